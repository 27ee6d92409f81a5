"""A V1 pack importing every ComfyUI host module partyflow offers, the way real packs do at module level."""

from __future__ import annotations

import comfy
import comfy.clip_vision  # noqa: F401 - diffusion runtime: imports, fails only when used
import comfy.controlnet  # noqa: F401
import comfy.diffusers_convert  # noqa: F401
import comfy.latent_formats
import comfy.model_management
import comfy.ops
import comfy.patcher_extension  # noqa: F401
import comfy.sample
import comfy.sampler_helpers  # noqa: F401
import comfy.samplers
import comfy.sd
import comfy.utils
import execution
import folder_paths
import latent_preview
import node_helpers
import nodes  # noqa: F401 - packs import the module itself too
from comfy.cli_args import args
from comfy.comfy_types.node_typing import IO
from comfy_api.latest import io  # noqa: F401
from comfy_extras.chainner_models import model_loading  # noqa: F401
from comfy_extras.nodes_clip_sdxl import CLIPTextEncodeSDXL  # noqa: F401
from comfy_extras.nodes_latent import LatentAdd  # noqa: F401
from comfy_extras.nodes_mask import composite  # noqa: F401
from execution import ExecutionBlocker  # noqa: F401
from nodes import MAX_RESOLUTION, CheckpointLoaderSimple, LoraLoader, PreviewImage, SaveImage, common_ksampler  # noqa: F401
from server import PromptServer

folder_paths.add_model_folder_path("host_sample_models", folder_paths.get_folder_paths("checkpoints")[0])
ROUTE_APP = PromptServer.instance.app
SUPPORTS = PromptServer.instance.supports


class SamplerPicker:
    """Lists ComfyUI's sampler names while INPUT_TYPES is read, as sampler packs do."""

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"sampler": (comfy.samplers.KSampler.SAMPLERS,),
                             "scheduler": (comfy.samplers.KSampler.SCHEDULERS,)}}

    RETURN_TYPES = (IO.STRING,)
    FUNCTION = "pick"
    CATEGORY = "host sample"

    def pick(self, sampler: str, scheduler: str):
        return (f"{sampler}/{scheduler}",)


class HostFacts:
    """Reads host facts at run time: defaults, helpers, device, a progress callback."""

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"steps": ("INT", {"default": 3, "min": 1, "max": MAX_RESOLUTION})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "facts"
    CATEGORY = "host sample"

    def facts(self, steps: int):
        callback = latent_preview.prepare_callback(None, steps)
        for step in range(steps):
            callback(step, None, None, steps)
        conditioning = node_helpers.conditioning_set_values([[0, {"a": 1}]], {"b": 2})
        renamed = comfy.utils.state_dict_prefix_replace({"model.x": 1}, {"model.": "diffusion."})
        facts = [
            f"metadata={'off' if args.disable_metadata else 'on'}",
            f"preview={args.preview_method.value}",
            f"device={comfy.model_management.get_torch_device()}",
            f"cond={sorted(conditioning[0][1])}",
            f"renamed={sorted(renamed)}",
            f"hash={node_helpers.hasher()().name}",
            f"result={execution.ExecutionResult.SUCCESS.name}",
            f"folder={'host_sample_models' in folder_paths.folder_names_and_paths}",
        ]
        return (";".join(facts),)


class NeedsDiffusion:
    """A node that needs ComfyUI's diffusion runtime: the pack loads, only running this fails."""

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"name": ("STRING", {"default": "model.safetensors"})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load"
    CATEGORY = "host sample"

    def load(self, name: str):
        return comfy.sd.load_checkpoint_guess_config(name)[:1]


NODE_CLASS_MAPPINGS = {"HostSamplerPicker": SamplerPicker, "HostFacts": HostFacts,
                       "HostNeedsDiffusion": NeedsDiffusion}
