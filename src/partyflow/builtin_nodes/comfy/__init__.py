"""ComfyUI's non-diffusion core nodes, with ComfyUI's class names, inputs and outputs.

Workflows saved in ComfyUI use these names (`PreviewAny`, `PrimitiveString`, ...); packs also import them from
`nodes`. Written as an ordinary pack on the public node interface.
"""

from __future__ import annotations

from . import audio, images, text

_MODULES = (text, images, audio)

NODE_CLASS_MAPPINGS = {name: cls for module in _MODULES for name, cls in module.NODE_CLASS_MAPPINGS.items()}
NODE_DISPLAY_NAME_MAPPINGS = {name: title for module in _MODULES
                              for name, title in module.NODE_DISPLAY_NAME_MAPPINGS.items()}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
