"""ComfyUI's `comfy.utils`: the progress bar nodes report through, and the tensor helpers packs call.

Torch is imported only inside the helpers that need it, so importing this module (and the progress bar)
stays torch-free. Names of the real module that serve ComfyUI's diffusion models only resolve to
placeholders that raise `DiffusionRuntimeError` when called.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from partyflow.nodes.comfy_compat._runtime import placeholder_function
from partyflow.nodes.host import NodeScope, current_scope

__all__ = ["PROGRESS_BAR_ENABLED", "ProgressBar", "common_upscale", "get_attr", "get_tiled_scale_steps",
           "lanczos", "load_torch_file", "repeat_to_batch_size", "save_torch_file", "set_attr",
           "state_dict_key_replace", "state_dict_prefix_replace", "tiled_scale", "tiled_scale_multidim"]

PROGRESS_BAR_ENABLED = True


class ProgressBar:
    """Progress of the node call that created it, reported as `(value, total, preview)` to its scope.

    The scope is captured at construction so that worker threads a node starts can update the bar; outside a
    node call the bar only counts.
    """

    def __init__(self, total: int | float, node_id: str | None = None) -> None:
        self.total = total
        self.current: int | float = 0
        self.node_id = node_id
        self._scope: NodeScope | None = current_scope()

    def update_absolute(self, value: int | float, total: int | float | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total)
        scope = self._scope or current_scope()
        if scope is not None:
            scope.report_progress(self.current, self.total, preview)

    def update(self, value: int | float) -> None:
        """Advance by `value` steps."""
        self.update_absolute(self.current + value)


def set_progress_bar_enabled(enabled: bool) -> None:
    """Accepted for compatibility; partyflow always reports progress to the node's scope."""


def set_progress_bar_global_hook(function: Any) -> None:
    """Accepted for compatibility; progress goes to the running node's scope instead of a global hook."""


# --- files ----------------------------------------------------------------------------------------------------

def load_torch_file(ckpt: str | os.PathLike[str], safe_load: bool = False, device: Any = None,
                    return_metadata: bool = False) -> Any:
    """A state dict from a `.safetensors`/`.sft` file or a torch pickle (loaded weights-only, never executing code)."""
    import torch

    path = os.fspath(ckpt)
    device = device if device is not None else torch.device("cpu")
    metadata = None
    if path.lower().endswith((".safetensors", ".sft")):
        from safetensors import safe_open

        state: dict[str, Any] = {}
        with safe_open(path, framework="pt", device=str(device)) as handle:
            metadata = handle.metadata()
            for key in handle.keys():
                state[key] = handle.get_tensor(key)
    else:
        loaded = torch.load(path, map_location=device, weights_only=True)
        state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
    return (state, metadata) if return_metadata else state


def save_torch_file(sd: dict[str, Any], ckpt: str | os.PathLike[str], metadata: dict[str, str] | None = None) -> None:
    """Write a state dict as safetensors (with optional string metadata)."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, os.fspath(ckpt), metadata=metadata)


# --- state dicts and attributes -------------------------------------------------------------------------------

def state_dict_key_replace(state_dict: dict[str, Any], keys_to_replace: dict[str, str]) -> dict[str, Any]:
    """Rename keys in place (`old -> new`); returns the same dict."""
    for old, new in keys_to_replace.items():
        if old in state_dict:
            state_dict[new] = state_dict.pop(old)
    return state_dict


def state_dict_prefix_replace(state_dict: dict[str, Any], replace_prefix: dict[str, str],
                              filter_keys: bool = False) -> dict[str, Any]:
    """Swap key prefixes; with `filter_keys` only the renamed keys are returned (in a new dict)."""
    out: dict[str, Any] = {} if filter_keys else state_dict
    for old, new in replace_prefix.items():
        renamed = [(key, new + key[len(old):]) for key in list(state_dict) if key.startswith(old)]
        for key, new_key in renamed:
            out[new_key] = state_dict.pop(key)
    return out


def get_attr(obj: Any, attr: str) -> Any:
    """Follow a dotted attribute path (`"model.diffusion_model.out"`)."""
    for name in attr.split("."):
        obj = getattr(obj, name)
    return obj


def set_attr(obj: Any, attr: str, value: Any) -> Any:
    """Set a dotted attribute path; returns the value it replaced."""
    *parents, last = attr.split(".")
    for name in parents:
        obj = getattr(obj, name)
    previous = getattr(obj, last, None)
    setattr(obj, last, value)
    return previous


# --- images and latents ---------------------------------------------------------------------------------------

def repeat_to_batch_size(tensor: Any, batch_size: int, dim: int = 0) -> Any:
    """Repeat (or cut) along `dim` until it has `batch_size` entries."""
    size = tensor.shape[dim]
    if size > batch_size:
        return tensor.narrow(dim, 0, batch_size)
    if size < batch_size:
        repeats = [1] * tensor.ndim
        repeats[dim] = math.ceil(batch_size / size)
        return tensor.repeat(*repeats).narrow(dim, 0, batch_size)
    return tensor


def lanczos(samples: Any, width: int, height: int) -> Any:
    """Resize `[B,C,H,W]` floats with Pillow's Lanczos filter."""
    import numpy as np
    import torch
    from PIL import Image

    images = []
    for sample in samples:
        array = np.clip(255.0 * sample.movedim(0, -1).cpu().numpy(), 0, 255).astype(np.uint8)
        resized = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).resize(
            (width, height), resample=Image.LANCZOS)
        out = torch.from_numpy(np.array(resized).astype(np.float32) / 255.0)
        images.append(out.unsqueeze(-1) if out.ndim == 2 else out)
    return torch.stack(images).movedim(-1, 1).to(samples.device, samples.dtype)


def common_upscale(samples: Any, width: int, height: int, upscale_method: str, crop: str) -> Any:
    """Resize `[B,C,H,W]` to `width` x `height`; `crop="center"` first cuts to the target's aspect ratio.

    Methods: nearest-exact, bilinear, area, bicubic, lanczos (ComfyUI's names). `bislerp` (spherical
    interpolation for latents) is not offered and is refused with a clear error.
    """
    import torch

    if crop == "center":
        old_w, old_h = samples.shape[-1], samples.shape[-2]
        old_aspect, new_aspect = old_w / old_h, width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
        samples = samples.narrow(-2, y, old_h - y * 2).narrow(-1, x, old_w - x * 2)
    if upscale_method == "lanczos":
        return lanczos(samples, width, height)
    if upscale_method not in {"nearest-exact", "bilinear", "area", "bicubic", "nearest"}:
        raise ValueError(f"upscale method {upscale_method!r} is not available in partyflow; use nearest-exact, "
                         "bilinear, area, bicubic or lanczos")
    return torch.nn.functional.interpolate(samples, size=(height, width), mode=upscale_method)


def get_tiled_scale_steps(width: int, height: int, tile_x: int, tile_y: int, overlap: int) -> int:
    """How many tiles `tiled_scale` will process (for a progress bar's total)."""
    return math.ceil(height / (tile_y - overlap)) * math.ceil(width / (tile_x - overlap))


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return starts


def tiled_scale_multidim(samples: Any, function: Callable[[Any], Any], tile: Sequence[int] = (64, 64),
                         overlap: int = 8, upscale_amount: float = 4, out_channels: int = 3,
                         output_device: Any = "cpu", downscale: bool = False, index_formulas: Any = None,
                         pbar: ProgressBar | None = None) -> Any:
    """Apply `function` (which scales by `upscale_amount`) tile by tile over the trailing dims of `samples`.

    Tiles overlap by `overlap` input pixels and are blended with linear ramps over the overlap, so seams do
    not show; each batch item is processed on its own.
    """
    import itertools

    import torch

    dims = len(tile)
    scale = (1 / upscale_amount) if downscale else upscale_amount
    spatial = samples.shape[-dims:]
    out_shape = [round(s * scale) for s in spatial]
    outputs = []
    for item in samples.split(1):
        total = torch.zeros([1, out_channels, *out_shape], device=output_device)
        weight = torch.zeros([1, out_channels, *out_shape], device=output_device)
        starts = [_tile_starts(spatial[d], tile[d], overlap) for d in range(dims)]
        for corner in itertools.product(*starts):
            piece = item
            for d, start in enumerate(corner):
                piece = piece.narrow(d + 2, start, min(tile[d], spatial[d] - start))
            result = function(piece).to(output_device)
            mask = torch.ones_like(result)
            ramp = round(overlap * scale)
            for d in range(dims):
                length = result.shape[d + 2]
                feather = min(ramp, length // 2)
                for t in range(feather):
                    factor = (t + 1) / (feather + 1)
                    if corner[d] > 0:
                        mask.narrow(d + 2, t, 1).mul_(factor)
                    if corner[d] + tile[d] < spatial[d]:
                        mask.narrow(d + 2, length - 1 - t, 1).mul_(factor)
            region_total, region_weight = total, weight
            for d, start in enumerate(corner):
                begin = round(start * scale)
                region_total = region_total.narrow(d + 2, begin, result.shape[d + 2])
                region_weight = region_weight.narrow(d + 2, begin, result.shape[d + 2])
            region_total += result * mask
            region_weight += mask
            if pbar is not None:
                pbar.update(1)
        outputs.append(total / weight.clamp(min=1e-8))
    return torch.cat(outputs)


def tiled_scale(samples: Any, function: Callable[[Any], Any], tile_x: int = 64, tile_y: int = 64, overlap: int = 8,
                upscale_amount: float = 4, out_channels: int = 3, output_device: Any = "cpu",
                pbar: ProgressBar | None = None) -> Any:
    """`tiled_scale_multidim` over height and width."""
    return tiled_scale_multidim(samples, function, (tile_y, tile_x), overlap=overlap, upscale_amount=upscale_amount,
                                out_channels=out_channels, output_device=output_device, pbar=pbar)


def __getattr__(name: str) -> Any:
    """Other names of ComfyUI's module (latent packing, model-weight helpers) need its diffusion runtime."""
    if name.startswith("__"):
        raise AttributeError(name)
    value = placeholder_function(f"comfy.utils.{name}")
    globals()[name] = value
    return value
