"""ComfyUI's `comfy_api.latest`: the V3 node API (`io`, `ui`) and `ComfyExtension` registration.

A V3 pack exports `comfy_entrypoint()` (sync or async) returning a `ComfyExtension`; the loader awaits its
`on_load()` and `get_node_list()` and registers each node under its schema's `node_id`.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from fractions import Fraction
from typing import Any

from partyflow.nodes.comfy_compat._runtime import placeholder
from partyflow.nodes.comfy_compat.comfy_api.latest import _io as io
from partyflow.nodes.comfy_compat.comfy_api.latest import _ui as ui

__all__ = ["IO", "UI", "ComfyAPI", "ComfyAPISync", "ComfyExtension", "Input", "InputImpl", "Types", "io", "ui"]

IO = io
UI = ui


class ComfyExtension(abc.ABC):
    """What `comfy_entrypoint()` returns: the nodes a V3 pack offers."""

    async def on_load(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Called once before `get_node_list()`; packs set up shared resources here."""

    @abc.abstractmethod
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """The pack's node classes."""


class Input:
    """Type aliases V3 packs annotate with (`Input.Image` is an IMAGE tensor)."""

    Image = Any
    Audio = dict
    Mask = Any
    Latent = dict
    Video = Any


class _Choices(enum.StrEnum):
    @classmethod
    def as_input(cls) -> list[str]:
        """The values, for a combo input's options."""
        return [member.value for member in cls]


class VideoCodec(_Choices):
    AUTO = "auto"
    H264 = "h264"


class VideoContainer(_Choices):
    AUTO = "auto"
    MP4 = "mp4"

    @classmethod
    def get_extension(cls, value: str | VideoContainer) -> str:
        member = cls(value)
        return "mp4" if member in (cls.AUTO, cls.MP4) else member.value


@dataclasses.dataclass
class VideoComponents:
    """Frames (`[T,H,W,C]` IMAGE), optional AUDIO and the frame rate of a video."""

    images: Any
    frame_rate: Fraction = Fraction(24)
    audio: Any = None
    metadata: dict[str, Any] | None = None


_VIDEO = "ComfyUI's video support (PyAV containers)"


class InputImpl:
    """Video inputs: the classes import; making one needs ComfyUI's video support, which partyflow lacks."""

    VideoFromFile = placeholder("comfy_api.latest.InputImpl.VideoFromFile", _VIDEO)
    VideoFromComponents = placeholder("comfy_api.latest.InputImpl.VideoFromComponents", _VIDEO)


class Types:
    """The codec/container choices (real, for combo inputs) and `VideoComponents`."""

    VideoCodec = VideoCodec
    VideoContainer = VideoContainer
    VideoComponents = VideoComponents


class ComfyAPI:
    """`ComfyAPI().execution.set_progress(...)`: progress of the running node."""

    class _Execution:
        async def set_progress(self, value: float, max_value: float, node_id: str | None = None,
                               preview_image: Any = None, ignore_size_limit: bool = False) -> None:
            from partyflow.nodes.host import current_scope

            scope = current_scope()
            if scope is not None:
                scope.report_progress(value, max_value, None)

    def __init__(self) -> None:
        self.execution = self._Execution()


class ComfyAPISync:
    """The synchronous twin of `ComfyAPI`."""

    class _Execution:
        def set_progress(self, value: float, max_value: float, node_id: str | None = None,
                         preview_image: Any = None, ignore_size_limit: bool = False) -> None:
            from partyflow.nodes.host import current_scope

            scope = current_scope()
            if scope is not None:
                scope.report_progress(value, max_value, None)

    def __init__(self) -> None:
        self.execution = self._Execution()
