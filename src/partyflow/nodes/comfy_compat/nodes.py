"""ComfyUI's `nodes` module: the running engine's node classes, read live from its registry.

`NODE_CLASS_MAPPINGS` and `NODE_DISPLAY_NAME_MAPPINGS` are read-only views that read `current_host()` at
each access (so a pack may import them at module level), and a registered class can be
imported by its class_type (`from nodes import SaveImage` works where such a node is registered).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from partyflow.nodes.comfy_compat._located import located_file
from partyflow.nodes.comfy_compat._runtime import DiffusionRuntimeError
from partyflow.nodes.comfy_compat.comfy import model_management
from partyflow.nodes.host import current_host, current_host_or_none
from partyflow.nodes.registry import NodeRegistry

__all__ = [
    "MAX_RESOLUTION", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "before_node_execution",
    "common_ksampler", "interrupt_processing",
]

MAX_RESOLUTION = 16384


class _ClassMappings(Mapping[str, type]):
    """class_type -> class of the engine importing or running the caller, as it is at each access."""

    def _registry(self) -> NodeRegistry:
        return current_host().registry

    def __getitem__(self, class_type: str) -> type:
        registry = self._registry()
        if class_type not in registry:
            raise KeyError(class_type)
        return registry.entry(class_type).cls

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._registry()))

    def __len__(self) -> int:
        return len(self._registry())

    def __repr__(self) -> str:
        return f"NODE_CLASS_MAPPINGS({sorted(self)!r})"


class _DisplayNames(Mapping[str, str]):
    """class_type -> display name, for the classes that declared one."""

    def _names(self) -> dict[str, str]:
        return current_host().registry.display_names()

    def __getitem__(self, class_type: str) -> str:
        return self._names()[class_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return f"NODE_DISPLAY_NAME_MAPPINGS({self._names()!r})"


NODE_CLASS_MAPPINGS: Mapping[str, type] = _ClassMappings()
NODE_DISPLAY_NAME_MAPPINGS: Mapping[str, str] = _DisplayNames()


def before_node_execution() -> None:
    model_management.throw_exception_if_processing_interrupted()


def interrupt_processing(value: bool = True) -> None:
    model_management.interrupt_current_processing(value)


# ComfyUI's core node classes that need its diffusion runtime: class_type -> RETURN_TYPES. They import (packs
# subclass them and call them from their own nodes), and running one raises DiffusionRuntimeError.
_DIFFUSION_NODES: dict[str, tuple[str, ...]] = {
    "CheckpointLoaderSimple": ("MODEL", "CLIP", "VAE"), "CheckpointLoader": ("MODEL", "CLIP", "VAE"),
    "DiffusersLoader": ("MODEL", "CLIP", "VAE"), "unCLIPCheckpointLoader": ("MODEL", "CLIP", "VAE", "CLIP_VISION"),
    "ImageOnlyCheckpointLoader": ("MODEL", "CLIP_VISION", "VAE"),
    "CLIPTextEncode": ("CONDITIONING",), "CLIPSetLastLayer": ("CLIP",), "ConditioningCombine": ("CONDITIONING",),
    "ConditioningAverage": ("CONDITIONING",), "ConditioningConcat": ("CONDITIONING",),
    "ConditioningSetArea": ("CONDITIONING",), "ConditioningSetAreaPercentage": ("CONDITIONING",),
    "ConditioningSetAreaStrength": ("CONDITIONING",), "ConditioningSetMask": ("CONDITIONING",),
    "ConditioningZeroOut": ("CONDITIONING",), "ConditioningSetTimestepRange": ("CONDITIONING",),
    "KSampler": ("LATENT",), "KSamplerAdvanced": ("LATENT",), "VAEDecode": ("IMAGE",), "VAEEncode": ("LATENT",),
    "VAEDecodeTiled": ("IMAGE",), "VAEEncodeTiled": ("LATENT",), "VAEEncodeForInpaint": ("LATENT",),
    "SetLatentNoiseMask": ("LATENT",), "VAELoader": ("VAE",), "LoraLoader": ("MODEL", "CLIP"),
    "LoraLoaderModelOnly": ("MODEL",), "CLIPLoader": ("CLIP",), "DualCLIPLoader": ("CLIP",), "UNETLoader": ("MODEL",),
    "ControlNetLoader": ("CONTROL_NET",), "DiffControlNetLoader": ("CONTROL_NET",),
    "ControlNetApply": ("CONDITIONING",), "ControlNetApplyAdvanced": ("CONDITIONING", "CONDITIONING"),
    "StyleModelLoader": ("STYLE_MODEL",), "StyleModelApply": ("CONDITIONING",), "CLIPVisionLoader": ("CLIP_VISION",),
    "CLIPVisionEncode": ("CLIP_VISION_OUTPUT",), "unCLIPConditioning": ("CONDITIONING",),
    "GLIGENLoader": ("GLIGEN",), "GLIGENTextBoxApply": ("CONDITIONING",), "EmptyLatentImage": ("LATENT",),
    "LatentUpscale": ("LATENT",), "LatentUpscaleBy": ("LATENT",), "LatentFromBatch": ("LATENT",),
    "RepeatLatentBatch": ("LATENT",), "LatentComposite": ("LATENT",), "LatentBlend": ("LATENT",),
    "LatentCrop": ("LATENT",), "LatentFlip": ("LATENT",), "LatentRotate": ("LATENT",), "SaveLatent": (),
    "LoadLatent": ("LATENT",), "InpaintModelConditioning": ("CONDITIONING", "CONDITIONING", "LATENT"),
}
_PLACEHOLDER_NODES: dict[str, type] = {}


def _diffusion_node(class_type: str) -> type:
    """A V1 node class standing for ComfyUI's `class_type`: readable and subclassable; running it raises."""
    if class_type not in _PLACEHOLDER_NODES:
        def run(self: Any, **kwargs: Any) -> Any:
            raise DiffusionRuntimeError(f"nodes.{class_type}")

        _PLACEHOLDER_NODES[class_type] = type(class_type, (), {
            "__module__": "nodes", "__doc__": f"ComfyUI's {class_type}; needs its diffusion runtime to run.",
            "INPUT_TYPES": classmethod(lambda cls: {"required": {}}), "RETURN_TYPES": _DIFFUSION_NODES[class_type],
            "FUNCTION": "run", "CATEGORY": "diffusion (needs ComfyUI)", "run": run})
    return _PLACEHOLDER_NODES[class_type]


def common_ksampler(*args: Any, **kwargs: Any) -> Any:
    """ComfyUI's shared sampling helper; needs its diffusion runtime."""
    raise DiffusionRuntimeError("nodes.common_ksampler")


def __getattr__(name: str) -> Any:
    """`EXTENSION_WEB_DIRS`, registered node classes by class_type, then ComfyUI's core classes."""
    if name == "__file__":
        return located_file(_REAL_FILE, "nodes.py")
    if name.startswith("__"):
        raise AttributeError(f"module 'nodes' has no attribute {name!r}")
    host = current_host_or_none()
    if host is not None and name == "EXTENSION_WEB_DIRS":
        return {pack: str(path) for pack, path in host.registry.web_directories.items()}
    if host is not None and name in host.registry:
        return host.registry.entry(name).cls
    core = _core_class(name)
    if core is not None:
        return core
    if name in _DIFFUSION_NODES:
        return _diffusion_node(name)
    raise AttributeError(f"module 'nodes' has no attribute {name!r} (no node class of that name is registered)")


def _core_class(name: str) -> type | None:
    """ComfyUI's non-diffusion core nodes, from partyflow's `comfy` pack, even where that pack is not loaded."""
    try:
        from partyflow.builtin_nodes.comfy import NODE_CLASS_MAPPINGS as core
    except ImportError:  # pragma: no cover - the pack ships with partyflow
        return None
    return core.get(name)


_REAL_FILE = __file__
del __file__  # answered by __getattr__: a path in the engine's home (see _located)
