"""ComfyUI's `comfy.comfy_types.node_typing`: `IO` (socket type names) and the node typing helpers.

`IO` members are plain strings to everything that reads them (`IO.STRING == "STRING"`), so a pack may put them
in INPUT_TYPES and RETURN_TYPES. Its `!=` follows ComfyUI: `*` matches anything and comma-separated unions
match when one side's types include the other's.
"""

from __future__ import annotations

import enum
from abc import ABC
from typing import Any, Literal, TypedDict

__all__ = ["IO", "CheckLazyMixin", "ComfyNodeABC", "FileLocator", "HiddenInputTypeDict", "InputTypeDict",
           "InputTypeOptions", "StrEnum"]


class StrEnum(enum.StrEnum):
    """A string enum whose `str()` is its value."""

    def __str__(self) -> str:
        return str(self.value)


class IO(StrEnum):
    STRING = "STRING"
    IMAGE = "IMAGE"
    MASK = "MASK"
    LATENT = "LATENT"
    BOOLEAN = "BOOLEAN"
    INT = "INT"
    FLOAT = "FLOAT"
    COMBO = "COMBO"
    CONDITIONING = "CONDITIONING"
    SAMPLER = "SAMPLER"
    SIGMAS = "SIGMAS"
    GUIDER = "GUIDER"
    NOISE = "NOISE"
    CLIP = "CLIP"
    CONTROL_NET = "CONTROL_NET"
    VAE = "VAE"
    MODEL = "MODEL"
    CLIP_VISION = "CLIP_VISION"
    CLIP_VISION_OUTPUT = "CLIP_VISION_OUTPUT"
    STYLE_MODEL = "STYLE_MODEL"
    GLIGEN = "GLIGEN"
    UPSCALE_MODEL = "UPSCALE_MODEL"
    AUDIO = "AUDIO"
    WEBCAM = "WEBCAM"
    POINT = "POINT"
    FACE_ANALYSIS = "FACE_ANALYSIS"
    BBOX = "BBOX"
    SEGS = "SEGS"
    VIDEO = "VIDEO"
    ANY = "*"
    NUMBER = "FLOAT,INT"
    PRIMITIVE = "STRING,FLOAT,INT,BOOLEAN"

    def __ne__(self, other: object) -> bool:
        if self.value == "*" or other == "*":
            return False
        if not isinstance(other, str):
            return True
        mine, theirs = frozenset(self.value.split(",")), frozenset(other.split(","))
        return not (mine <= theirs or theirs <= mine)

    __hash__ = str.__hash__


class InputTypeOptions(TypedDict, total=False):
    default: Any
    defaultInput: bool
    forceInput: bool
    lazy: bool
    rawLink: bool
    tooltip: str
    min: float
    max: float
    step: float
    round: float
    label_on: str
    label_off: str
    multiline: bool
    placeholder: str
    dynamicPrompts: bool
    image_upload: bool
    image_folder: Literal["input", "output", "temp"]
    control_after_generate: bool
    options: list[Any]


class HiddenInputTypeDict(TypedDict, total=False):
    node_id: Literal["UNIQUE_ID"]
    unique_id: Literal["UNIQUE_ID"]
    prompt: Literal["PROMPT"]
    extra_pnginfo: Literal["EXTRA_PNGINFO"]
    dynprompt: Literal["DYNPROMPT"]


class InputTypeDict(TypedDict, total=False):
    required: dict[str, Any]
    optional: dict[str, Any]
    hidden: HiddenInputTypeDict


class FileLocator(TypedDict, total=False):
    filename: str
    subfolder: str
    type: Literal["input", "output", "temp"]


class ComfyNodeABC(ABC):  # noqa: B024 - a typing base with no abstract members, as in ComfyUI
    """Base class packs may derive their V1 nodes from; it only names the interface's attributes."""

    DESCRIPTION: str
    CATEGORY: str
    EXPERIMENTAL: bool
    DEPRECATED: bool
    OUTPUT_NODE: bool
    INPUT_IS_LIST: bool
    OUTPUT_IS_LIST: tuple[bool, ...]
    RETURN_TYPES: tuple[str, ...]
    RETURN_NAMES: tuple[str, ...]
    OUTPUT_TOOLTIPS: tuple[str, ...]
    FUNCTION: str

    @classmethod
    def INPUT_TYPES(cls) -> InputTypeDict:  # noqa: N802 - ComfyUI's name
        return {"required": {}}


class CheckLazyMixin:
    """Asks for every lazy input that has not been evaluated yet."""

    def check_lazy_status(self, **kwargs: Any) -> list[str]:
        return [name for name, value in kwargs.items() if value is None]
