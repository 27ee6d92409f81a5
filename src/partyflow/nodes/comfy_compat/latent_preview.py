"""ComfyUI's `latent_preview`: sampler callbacks that report progress (and previews where a decoder exists).

`prepare_callback` is real: the callback a sampler calls each step advances the node's progress bar. With
ComfyUI's default preview method ("none") there is no previewer, so `get_previewer` answers None, as it does
there; `Latent2RGBPreviewer` turns latents into preview images with a linear colour map.
"""

from __future__ import annotations

from typing import Any

from partyflow.nodes.comfy_compat.comfy.cli_args import LatentPreviewMethod, args
from partyflow.nodes.comfy_compat.comfy.utils import ProgressBar

__all__ = ["MAX_PREVIEW_RESOLUTION", "Latent2RGBPreviewer", "LatentPreviewer", "TAESDPreviewerImpl",
           "get_previewer", "prepare_callback", "preview_to_image", "set_preview_method"]

MAX_PREVIEW_RESOLUTION = args.preview_size


def preview_to_image(latent_image: Any) -> Any:
    """An `[H,W,3]` float tensor in -1..1 as a Pillow image."""
    from PIL import Image

    scaled = ((latent_image + 1.0) / 2.0).clamp(0, 1).mul(255.0).round().byte().cpu()
    return Image.fromarray(scaled.numpy())


class LatentPreviewer:
    def decode_latent_to_preview(self, x0: Any) -> Any:
        """A Pillow image of a latent; previewers of packs implement it (ComfyUI's interface)."""
        raise NotImplementedError(f"{type(self).__name__} must implement decode_latent_to_preview()")

    def decode_latent_to_preview_image(self, preview_format: str, x0: Any) -> tuple[str, Any, int]:
        return preview_format, self.decode_latent_to_preview(x0), MAX_PREVIEW_RESOLUTION


class Latent2RGBPreviewer(LatentPreviewer):
    """Maps latent channels to RGB with a fixed matrix (the model's `latent_rgb_factors`)."""

    def __init__(self, latent_rgb_factors: Any, latent_rgb_factors_bias: Any = None,
                 latent_rgb_factors_reshape: Any = None) -> None:
        import torch

        self.factors = torch.tensor(latent_rgb_factors, device="cpu").transpose(0, 1)
        self.bias = torch.tensor(latent_rgb_factors_bias, device="cpu") if latent_rgb_factors_bias is not None else None
        self.reshape = latent_rgb_factors_reshape

    def decode_latent_to_preview(self, x0: Any) -> Any:
        import torch

        if self.reshape is not None:
            x0 = self.reshape(x0)
        sample = x0[0] if x0.ndim == 4 else x0[0, :, 0]
        rgb = torch.nn.functional.linear(sample.movedim(0, -1).float().cpu(), self.factors, bias=self.bias)
        return preview_to_image(rgb)


class TAESDPreviewerImpl(LatentPreviewer):
    """Previews through a TAESD decoder model, which needs ComfyUI's diffusion runtime."""

    def __init__(self, taesd: Any) -> None:
        from partyflow.nodes.comfy_compat._runtime import DiffusionRuntimeError
        raise DiffusionRuntimeError("latent_preview.TAESDPreviewerImpl")


def get_previewer(device: Any, latent_format: Any) -> LatentPreviewer | None:
    """A previewer for the configured method; with ComfyUI's default ("none") there is none."""
    method = args.preview_method
    if method == LatentPreviewMethod.NoPreviews:
        return None
    factors = getattr(latent_format, "latent_rgb_factors", None)
    if factors is None:
        return None
    return Latent2RGBPreviewer(factors, getattr(latent_format, "latent_rgb_factors_bias", None))


def prepare_callback(model: Any, steps: int, x0_output_dict: dict[str, Any] | None = None) -> Any:
    """The per-step sampler callback: advances the node's progress bar and keeps the latest x0."""
    previewer = get_previewer(None, getattr(getattr(model, "model", None), "latent_format", None))
    bar = ProgressBar(steps)

    def callback(step: int, x0: Any, x: Any, total_steps: int) -> None:
        if x0_output_dict is not None:
            x0_output_dict["x0"] = x0
        preview = previewer.decode_latent_to_preview_image("JPEG", x0) if previewer is not None else None
        bar.update_absolute(step + 1, total_steps, preview)

    return callback


def set_preview_method(override: str | None) -> None:
    """Choose the preview method by name ("none", "auto", "latent2rgb", "taesd"); None keeps the current one."""
    if override and override != "default":
        args.preview_method = LatentPreviewMethod(override)
