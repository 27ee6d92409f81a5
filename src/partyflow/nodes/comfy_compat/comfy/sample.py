"""ComfyUI's `comfy.sample`: `prepare_noise` is real (seeded noise for a latent); sampling needs the runtime."""

from __future__ import annotations

from typing import Any

from partyflow.nodes.comfy_compat._runtime import placeholder_function

__all__ = ["fix_empty_latent_channels", "prepare_noise", "sample", "sample_custom"]


def prepare_noise(latent_image: Any, seed: int, noise_inds: Any = None) -> Any:
    """Gaussian noise shaped like `latent_image`, reproducible from `seed` (per batch index when given)."""
    import torch

    generator = torch.manual_seed(seed)
    if noise_inds is None:
        return torch.randn(latent_image.size(), dtype=latent_image.dtype, layout=latent_image.layout,
                           generator=generator, device="cpu")
    unique, inverse = torch.unique(torch.as_tensor(noise_inds), sorted=True, return_inverse=True)
    noises = []
    for index in range(int(unique[-1]) + 1):
        noise = torch.randn([1, *latent_image.size()[1:]], dtype=latent_image.dtype, layout=latent_image.layout,
                            generator=generator, device="cpu")
        if index in unique:
            noises.append(noise)
    return torch.cat([noises[i] for i in inverse], dim=0)


def fix_empty_latent_channels(model: Any, latent_image: Any) -> Any:
    """Without a model there is nothing to adapt: the latent is returned as it is."""
    return latent_image


sample = placeholder_function("comfy.sample.sample")
sample_custom = placeholder_function("comfy.sample.sample_custom")
