"""ComfyUI's `comfy_api.torch_helpers`: model compilation, which needs ComfyUI's diffusion runtime."""

from partyflow.nodes.comfy_compat._runtime import placeholder_function

set_torch_compile_wrapper = placeholder_function("comfy_api.torch_helpers.set_torch_compile_wrapper")
