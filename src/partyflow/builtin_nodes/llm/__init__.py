"""partyflow's LLM node pack: a model loader for configured providers, Chat, Embeddings, tools and JSON parsing.

Written only against ComfyUI's node interface and the `partyflow.llm` library. Workflows name providers; keys
stay in the environment, so saved workflows, history and node outputs never hold one.
"""

from . import chat, embeddings, loader, parse, tools

_MODULES = (loader, chat, tools, embeddings, parse)

NODE_CLASS_MAPPINGS = {name: cls for module in _MODULES for name, cls in module.NODE_CLASS_MAPPINGS.items()}
NODE_DISPLAY_NAME_MAPPINGS = {name: title for module in _MODULES
                              for name, title in module.NODE_DISPLAY_NAME_MAPPINGS.items()}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
