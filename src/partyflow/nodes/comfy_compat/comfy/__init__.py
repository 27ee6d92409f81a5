"""ComfyUI's `comfy` package as far as packs need it without torch: `comfy.utils` and `comfy.model_management`.

Anything else under `comfy` (samplers, model loading) is ComfyUI's torch-based core, which partyflow does not
carry; importing it fails with ModuleNotFoundError naming the module.
"""
