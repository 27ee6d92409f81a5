"""ComfyUI's host modules (`folder_paths`, `server`, `comfy.utils`, ...) answered by partyflow.

Packs import these by their ComfyUI names. `install_compat_modules()` makes those names resolve to the
modules in this package by aliasing them in `sys.modules` only: nothing is written to site-packages, and a
module of that name that is already loaded from elsewhere is left alone, so inside a real ComfyUI its own
modules win. Every module here reads the engine it serves from `current_host()` / `current_scope()`, so two
engines in one process each see their own home.
"""

from __future__ import annotations

import importlib
import logging
import sys

__all__ = ["COMFY_MODULE_NAMES", "install_compat_modules"]

logger = logging.getLogger(__name__)

# ComfyUI name -> our module; parents come before their children.
_ALIASES: dict[str, str] = {
    "folder_paths": f"{__name__}.folder_paths",
    "server": f"{__name__}.server",
    "comfy": f"{__name__}.comfy",
    "comfy.utils": f"{__name__}.comfy.utils",
    "comfy.model_management": f"{__name__}.comfy.model_management",
    "comfy_execution": f"{__name__}.comfy_execution",
    "comfy_execution.graph_utils": f"{__name__}.comfy_execution.graph_utils",
    "comfy_execution.graph": f"{__name__}.comfy_execution.graph",
    "nodes": f"{__name__}.nodes",
    "comfy.cli_args": f"{__name__}.comfy.cli_args",
    "comfy.samplers": f"{__name__}.comfy.samplers",
    "comfy.sample": f"{__name__}.comfy.sample",
    "comfy.sd": f"{__name__}.comfy.sd",
    "comfy.comfy_types": f"{__name__}.comfy.comfy_types",
    "comfy.comfy_types.node_typing": f"{__name__}.comfy.comfy_types.node_typing",
    "comfy_api": f"{__name__}.comfy_api",
    "comfy_api.latest": f"{__name__}.comfy_api.latest",
    "comfy_api.latest._io": f"{__name__}.comfy_api.latest._io",
    "comfy_api.latest._ui": f"{__name__}.comfy_api.latest._ui",
    "comfy_api.feature_flags": f"{__name__}.comfy_api.feature_flags",
    "comfy_api.torch_helpers": f"{__name__}.comfy_api.torch_helpers",
    "latent_preview": f"{__name__}.latent_preview",
    "node_helpers": f"{__name__}.node_helpers",
    "execution": f"{__name__}.execution",
    "comfy_extras": f"{__name__}.comfy_extras",
    "comfy_extras.nodes_mask": f"{__name__}.comfy_extras.nodes_mask",
}

# ComfyUI modules that belong to its diffusion runtime: any import under these names that no real module
# answers gets a placeholder module (see _runtime), so packs import and fail only when they use one.
_DIFFUSION_PREFIXES = (
    "comfy.controlnet", "comfy.diffusers_convert", "comfy.clip_vision", "comfy.latent_formats", "comfy.ops",
    "comfy.sampler_helpers", "comfy.patcher_extension", "comfy.lora", "comfy.model_base", "comfy.model_detection",
    "comfy.model_patcher", "comfy.model_sampling", "comfy.taesd", "comfy.k_diffusion", "comfy.ldm",
    "comfy.quant_ops", "comfy.context_windows", "comfy.hooks", "comfy.sd1_clip", "comfy.sdxl_clip",
    "comfy.text_encoders", "comfy.supported_models", "comfy.supported_models_base", "comfy.gligen",
    "comfy.clip_model", "comfy.lora_convert", "comfy.float", "comfy.rmsnorm", "comfy.weight_adapter",
    "comfy.image_encoders", "comfy.audio_encoders", "comfy.extra_samplers", "comfy.conds", "comfy.cldm",
    "comfy.t2i_adapter", "comfy.model_sampling", "comfy_extras", "comfy_api.latest._input",
    "comfy_api.latest._input_impl", "comfy_api.latest._util", "comfy_api.input", "comfy_api.input_impl",
    "comfy_api.util", "comfy_execution.caching", "comfy_execution.progress", "comfy_execution.utils",
    "comfy_execution.validation", "comfy_execution.jobs",
)

COMFY_MODULE_NAMES: tuple[str, ...] = tuple(_ALIASES)


def install_compat_modules() -> None:
    """Alias our host modules under ComfyUI's names where those names are free; idempotent."""
    for alias, target in _ALIASES.items():
        module = importlib.import_module(target)
        present = sys.modules.get(alias)
        if present is module:
            continue
        if present is not None:
            logger.debug("keeping the already loaded module %r (%s)", alias, getattr(present, "__file__", "?"))
            continue
        parent = alias.rpartition(".")[0]
        if parent and sys.modules.get(parent) is not importlib.import_module(_ALIASES[parent]):
            continue  # never hang our submodule under somebody else's package
        sys.modules[alias] = module
        head, _, child = alias.rpartition(".")
        if head and sys.modules.get(head) is not None:
            setattr(sys.modules[head], child, module)  # `import comfy` then `comfy.samplers.X` works
    _install_placeholder_finder()


def _install_placeholder_finder() -> None:
    """Placeholder modules for ComfyUI's diffusion runtime, tried after every real finder."""
    from partyflow.nodes.comfy_compat._runtime import PlaceholderFinder

    owner = importlib.import_module(_ALIASES["comfy"])
    if not any(isinstance(finder, PlaceholderFinder) and finder.owner is owner for finder in sys.meta_path):
        sys.meta_path.append(PlaceholderFinder(_DIFFUSION_PREFIXES, owner))
