"""ComfyUI's V3 `ui` helpers: what a node shows in the editor (`NodeOutput(ui=...)`).

Images and audio are written with the core nodes' savers into the engine's temp/output folders, and the
result has the `{"images": [{"filename", "subfolder", "type"}]}` shape V1 nodes return, so `/view` and
history show them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

__all__ = ["AudioSaveHelper", "ImageSaveHelper", "PreviewAudio", "PreviewImage", "PreviewMask", "PreviewText",
           "SavedAudios", "SavedImages", "SavedResult"]


class _UIOutput:
    def as_dict(self) -> dict[str, Any]:
        """The `ui` dict of a node result; each output kind below says what it shows (ComfyUI's interface)."""
        raise NotImplementedError(f"{type(self).__name__} must implement as_dict()")


class SavedResult(dict):  # type: ignore[type-arg]
    """One file the node wrote: `{"filename", "subfolder", "type"}`."""

    def __init__(self, filename: str, subfolder: str, type: Any) -> None:
        super().__init__(filename=filename, subfolder=subfolder, type=getattr(type, "value", type))

    @property
    def filename(self) -> str:
        return str(self["filename"])

    @property
    def subfolder(self) -> str:
        return str(self["subfolder"])

    @property
    def type(self) -> str:
        return str(self["type"])


class SavedImages(_UIOutput):
    def __init__(self, results: Sequence[SavedResult], is_animated: bool = False) -> None:
        self.results, self.is_animated = list(results), is_animated

    def as_dict(self) -> dict[str, Any]:
        return {"images": [dict(r) for r in self.results], "animated": (self.is_animated,)}


class SavedAudios(_UIOutput):
    def __init__(self, results: Sequence[SavedResult]) -> None:
        self.results = list(results)

    def as_dict(self) -> dict[str, Any]:
        return {"audio": [dict(r) for r in self.results]}


class PreviewText(_UIOutput):
    def __init__(self, value: str, **_: Any) -> None:
        self.value = value

    def as_dict(self) -> dict[str, Any]:
        return {"text": (self.value,)}


def _prefix() -> str:
    return "ComfyUI_temp_" + "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))


class ImageSaveHelper:
    """Writes IMAGE tensors as PNG files and describes them for the editor."""

    @staticmethod
    def save_images(images: Any, filename_prefix: str, folder_type: Any, cls: Any = None,
                    compress_level: int = 4) -> list[SavedResult]:
        from partyflow.builtin_nodes.comfy.images import save_images

        kind = str(getattr(folder_type, "value", folder_type))
        hidden = getattr(cls, "hidden", None)
        saved = save_images(images, filename_prefix, kind, prompt=getattr(hidden, "prompt", None),
                            extra_pnginfo=getattr(hidden, "extra_pnginfo", None), compress_level=compress_level)
        return [SavedResult(**entry) for entry in saved]

    @staticmethod
    def get_save_images_ui(images: Any, filename_prefix: str, cls: Any = None,
                           compress_level: int = 6) -> SavedImages:
        return SavedImages(ImageSaveHelper.save_images(images, filename_prefix, "output", cls, compress_level))


class AudioSaveHelper:
    """Writes AUDIO dicts (`{"waveform", "sample_rate"}`) as FLAC files."""

    @staticmethod
    def save_audio(audio: Any, filename_prefix: str, folder_type: Any, cls: Any = None, format: str = "flac",
                   **_: Any) -> list[SavedResult]:
        from partyflow.builtin_nodes.comfy.audio import SaveAudio

        saver = SaveAudio()
        saver.type = str(getattr(folder_type, "value", folder_type))
        return [SavedResult(**entry) for entry in saver.save_audio(audio, filename_prefix)["ui"]["audio"]]

    @staticmethod
    def get_save_audio_ui(audio: Any, filename_prefix: str, cls: Any = None, format: str = "flac",
                          **_: Any) -> SavedAudios:
        return SavedAudios(AudioSaveHelper.save_audio(audio, filename_prefix, "output", cls, format))


class PreviewImage(_UIOutput):
    def __init__(self, image: Any, animated: bool = False, cls: Any = None, **_: Any) -> None:
        self.values = ImageSaveHelper.save_images(image, _prefix(), "temp", cls, compress_level=1)
        self.animated = animated

    def as_dict(self) -> dict[str, Any]:
        return {"images": [dict(v) for v in self.values], "animated": (self.animated,)}


class PreviewMask(PreviewImage):
    def __init__(self, mask: Any, animated: bool = False, cls: Any = None, **kwargs: Any) -> None:
        from partyflow.media.images import mask_to_image

        super().__init__(mask_to_image(mask), animated, cls, **kwargs)


class PreviewAudio(_UIOutput):
    def __init__(self, audio: Any, cls: Any = None, **_: Any) -> None:
        self.values = AudioSaveHelper.save_audio(audio, _prefix(), "temp", cls)

    def as_dict(self) -> dict[str, Any]:
        return {"audio": [dict(v) for v in self.values]}
