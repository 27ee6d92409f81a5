"""ComfyUI's `comfy_extras.nodes_mask`: `composite` (pasting one image or latent onto another) is real.

Packs import `composite` for their own image nodes. The module's node classes are diffusion-runtime placeholders
(reading one works; running one raises `DiffusionRuntimeError`).
"""

from __future__ import annotations

from typing import Any

from partyflow.nodes.comfy_compat._runtime import placeholder
from partyflow.nodes.comfy_compat.comfy.utils import repeat_to_batch_size

__all__ = ["composite"]


def composite(destination: Any, source: Any, x: int, y: int, mask: Any = None, multiplier: int = 8,
              resize_source: bool = False) -> Any:
    """Paste `source` onto `destination` (both `[B,C,H,W]`) at pixel `(x, y)` given in units of `1/multiplier`.

    `mask` (`[H,W]` or `[B,H,W]`, 1 = source) is resized to the source; the source repeats to the
    destination's batch size; the part outside the destination is cut off. `destination` is changed in place
    and returned, as in ComfyUI.
    """
    import torch.nn.functional as functional

    source = source.to(destination.device)
    if resize_source:
        source = functional.interpolate(source, size=tuple(destination.shape[-2:]), mode="bilinear")
    source = repeat_to_batch_size(source, destination.shape[0])
    src_h, src_w = source.shape[-2], source.shape[-1]
    dst_h, dst_w = destination.shape[-2], destination.shape[-1]
    x = max(-src_w * multiplier, min(x, dst_w * multiplier))
    y = max(-src_h * multiplier, min(y, dst_h * multiplier))
    left, top = x // multiplier, y // multiplier
    if mask is None:
        weight = source.new_ones(source.shape)
    else:
        weight = mask.to(destination.device, copy=True).reshape((-1, 1, mask.shape[-2], mask.shape[-1]))
        weight = functional.interpolate(weight, size=(src_h, src_w), mode="bilinear")
        weight = repeat_to_batch_size(weight, source.shape[0])
    # the window of the destination the source covers, and the matching window of the source
    dst_top, dst_left = max(top, 0), max(left, 0)
    dst_bottom, dst_right = min(top + src_h, dst_h), min(left + src_w, dst_w)
    if dst_bottom <= dst_top or dst_right <= dst_left:
        return destination
    src_top, src_left = dst_top - top, dst_left - left
    height, width = dst_bottom - dst_top, dst_right - dst_left
    piece = source[..., src_top:src_top + height, src_left:src_left + width]
    alpha = weight[..., src_top:src_top + height, src_left:src_left + width]
    window = destination[..., dst_top:dst_bottom, dst_left:dst_right]
    destination[..., dst_top:dst_bottom, dst_left:dst_right] = alpha * piece + (1 - alpha) * window
    return destination


def __getattr__(name: str) -> Any:
    """The module's node classes (`MaskToImage`, `ImageCompositeMasked`, ...) as diffusion placeholders."""
    if name.startswith("__"):
        raise AttributeError(name)
    value = placeholder(f"comfy_extras.nodes_mask.{name}")
    globals()[name] = value
    return value
