"""ComfyUI's `comfy.samplers`: the sampler and scheduler names nodes list in their inputs.

Packs read `KSampler.SAMPLERS` / `KSampler.SCHEDULERS` inside INPUT_TYPES, so the lists are real (ComfyUI's
names, in its order). Sampling itself needs ComfyUI's diffusion runtime: the classes and functions that
sample are placeholders that raise `DiffusionRuntimeError` when used.
"""

from __future__ import annotations

from partyflow.nodes.comfy_compat._runtime import placeholder, placeholder_function

__all__ = ["KSAMPLER", "KSAMPLER_NAMES", "SAMPLER_NAMES", "SCHEDULER_NAMES", "CFGGuider", "KSampler", "Sampler",
           "calculate_sigmas", "ksampler", "sampler_object", "sampling_function"]

KSAMPLER_NAMES: list[str] = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde",
    "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp",
    "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "gradient_estimation", "er_sde", "seeds_2",
    "seeds_3",
]
SAMPLER_NAMES: list[str] = [*KSAMPLER_NAMES, "ddim", "uni_pc", "uni_pc_bh2"]
SCHEDULER_NAMES: list[str] = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
                              "linear_quadratic", "kl_optimal"]


class KSampler:
    """The names are real; constructing a sampler needs ComfyUI's diffusion runtime."""

    SCHEDULERS = SCHEDULER_NAMES
    SAMPLERS = SAMPLER_NAMES
    DISCARD_PENULTIMATE_SIGMA_SAMPLERS = {"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"}

    def __init__(self, *args: object, **kwargs: object) -> None:
        from partyflow.nodes.comfy_compat._runtime import DiffusionRuntimeError
        raise DiffusionRuntimeError("comfy.samplers.KSampler")


Sampler = placeholder("comfy.samplers.Sampler")
KSAMPLER = placeholder("comfy.samplers.KSAMPLER")
CFGGuider = placeholder("comfy.samplers.CFGGuider")
sampler_object = placeholder_function("comfy.samplers.sampler_object")
sampling_function = placeholder_function("comfy.samplers.sampling_function")
calculate_sigmas = placeholder_function("comfy.samplers.calculate_sigmas")
ksampler = placeholder_function("comfy.samplers.ksampler")
