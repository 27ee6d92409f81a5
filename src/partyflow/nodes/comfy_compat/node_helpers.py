"""ComfyUI's `node_helpers`: small helpers core and pack nodes share (conditioning edits, Pillow, hashing)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from partyflow.nodes.comfy_compat.comfy.cli_args import args

__all__ = ["conditioning_set_values", "conditioning_set_values_with_timestep_range", "hasher", "image_alpha_fix",
           "pillow", "string_to_torch_dtype"]

R = TypeVar("R")


def conditioning_set_values(conditioning: list[Any], values: Mapping[str, Any] | None = None,
                            append: bool = False) -> list[list[Any]]:
    """A copy of `conditioning` with `values` set on each entry's options (appended to lists with `append`)."""
    result = []
    for tensor, options in conditioning:
        updated = dict(options)
        for key, value in (values or {}).items():
            if append and key in updated:
                updated[key] = list(updated[key]) + list(value)
            else:
                updated[key] = value
        result.append([tensor, updated])
    return result


def conditioning_set_values_with_timestep_range(conditioning: list[Any], values: Mapping[str, Any] | None = None,
                                                start_percent: float = 0.0,
                                                end_percent: float = 1.0) -> list[list[Any]]:
    """Set `values` for the part of sampling between the two percentages."""
    timed = {**(values or {}), "start_percent": start_percent, "end_percent": end_percent}
    return conditioning_set_values(conditioning, timed)


def pillow(function: Callable[[Any], R], argument: Any) -> R:
    """Call a Pillow function, retrying once with truncated images allowed (as ComfyUI does for odd files)."""
    from PIL import ImageFile, UnidentifiedImageError

    try:
        return function(argument)
    except (OSError, UnidentifiedImageError, ValueError):
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            return function(argument)
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def hasher() -> Callable[..., Any]:
    """The hash constructor named by `args.default_hashing_function` (sha256 by default)."""
    return {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256,
            "sha512": hashlib.sha512}[args.default_hashing_function]


def string_to_torch_dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}.get(name)


def image_alpha_fix(destination: Any, source: Any) -> tuple[Any, Any]:
    """Make two `[B,H,W,C]` images agree on channels: add an opaque alpha, or drop it."""
    import torch

    if destination.shape[-1] < source.shape[-1]:
        source = source[..., :destination.shape[-1]]
    elif destination.shape[-1] > source.shape[-1]:
        pad = torch.ones_like(source[..., :1]).repeat_interleave(destination.shape[-1] - source.shape[-1], dim=-1)
        source = torch.cat([source, pad], dim=-1)
    return destination, source
