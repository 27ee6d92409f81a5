"""Load upscaler weights: safetensors first, legacy .pt checkpoints with weights_only=True."""

from .loader import UpscaleModelLoader

NODE_CLASS_MAPPINGS = {"CorpusUpscaleModelLoader": UpscaleModelLoader}
