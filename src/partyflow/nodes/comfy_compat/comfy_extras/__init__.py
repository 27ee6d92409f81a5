"""ComfyUI's `comfy_extras` package: `nodes_mask.composite` is real; its other modules are diffusion placeholders.

Submodules partyflow does not provide are answered by the placeholder finder (see `_runtime`), so this package
only has to exist for them to hang under.
"""
