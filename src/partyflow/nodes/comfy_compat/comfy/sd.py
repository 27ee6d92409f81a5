"""ComfyUI's `comfy.sd`: checkpoint, LoRA, VAE and CLIP loading, all of which need ComfyUI's diffusion runtime.

Every name imports; calling or instantiating one raises `DiffusionRuntimeError`.
"""

from __future__ import annotations

import enum

from partyflow.nodes.comfy_compat._runtime import placeholder, placeholder_function

__all__ = ["CLIP", "VAE", "CLIPType", "StyleModel", "TEModel", "load_checkpoint", "load_checkpoint_guess_config",
           "load_clip", "load_controlnet", "load_diffusion_model", "load_diffusion_model_state_dict",
           "load_lora_for_models", "load_style_model", "model_detection"]


class CLIPType(enum.Enum):
    STABLE_DIFFUSION = 1
    STABLE_CASCADE = 2
    SD3 = 3
    STABLE_AUDIO = 4
    HUNYUAN_DIT = 5
    FLUX = 6
    MOCHI = 7
    LTXV = 8
    HUNYUAN_VIDEO = 9
    PIXART = 10
    COSMOS = 11
    LUMINA2 = 12
    WAN = 13
    HIDREAM = 14
    CHROMA = 15
    ACE = 16
    OMNIGEN2 = 17
    QWEN_IMAGE = 18


TEModel = placeholder("comfy.sd.TEModel")
CLIP = placeholder("comfy.sd.CLIP")
VAE = placeholder("comfy.sd.VAE")
StyleModel = placeholder("comfy.sd.StyleModel")
load_checkpoint = placeholder_function("comfy.sd.load_checkpoint")
load_checkpoint_guess_config = placeholder_function("comfy.sd.load_checkpoint_guess_config")
load_lora_for_models = placeholder_function("comfy.sd.load_lora_for_models")
load_clip = placeholder_function("comfy.sd.load_clip")
load_style_model = placeholder_function("comfy.sd.load_style_model")
load_controlnet = placeholder_function("comfy.sd.load_controlnet")
load_diffusion_model = placeholder_function("comfy.sd.load_diffusion_model")
load_diffusion_model_state_dict = placeholder_function("comfy.sd.load_diffusion_model_state_dict")
load_unet = placeholder_function("comfy.sd.load_unet")
load_unet_state_dict = placeholder_function("comfy.sd.load_unet_state_dict")
model_detection = placeholder("comfy.sd.model_detection")
