"""partyflow's core node pack: primitives, text, JSON, math, logic, lists, loops, files and display.

Written only against ComfyUI's node interface, so the folder also works as a ComfyUI custom node pack.
"""

from . import display, files, json_nodes, lists, logic, loops, math_nodes, primitives, text

_MODULES = (primitives, text, json_nodes, math_nodes, logic, lists, loops, files, display)

NODE_CLASS_MAPPINGS = {name: cls for module in _MODULES for name, cls in module.NODE_CLASS_MAPPINGS.items()}
NODE_DISPLAY_NAME_MAPPINGS = {name: title for module in _MODULES
                              for name, title in module.NODE_DISPLAY_NAME_MAPPINGS.items()}
WEB_DIRECTORY = "./web"  # display_text.js shows Show Text results inside the node in the ComfyUI editor

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
