"""ComfyUI's `comfy_api.latest`: the V3 node API (`io`, `ui`) and `ComfyExtension` registration.

A V3 pack exports `comfy_entrypoint()` (sync or async) returning a `ComfyExtension`; the loader awaits its
`on_load()` and `get_node_list()` and registers each node under its schema's `node_id`.
"""

from __future__ import annotations

import abc
from typing import Any

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


class InputImpl:
    """Video containers are not provided by partyflow; the names exist so annotations import."""


class Types:
    """Video codec/container enums are not provided by partyflow; the names exist so annotations import."""


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
