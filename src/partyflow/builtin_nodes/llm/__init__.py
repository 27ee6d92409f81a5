"""partyflow's LLM node pack: model loaders (configured providers, local folders, GGUF files), Chat, Embeddings,
tools and JSON parsing; routers and what a run spent (issue 18).

Written only against ComfyUI's node interface and the `partyflow.llm` library. Workflows name providers; keys
stay in the environment, so saved workflows, history and node outputs never hold one.
"""

from . import chat, embeddings, loader, local, parse, tools, usage

_MODULES = (loader, local, chat, tools, embeddings, parse, usage)

NODE_CLASS_MAPPINGS = {name: cls for module in _MODULES for name, cls in module.NODE_CLASS_MAPPINGS.items()}
NODE_DISPLAY_NAME_MAPPINGS = {name: title for module in _MODULES
                              for name, title in module.NODE_DISPLAY_NAME_MAPPINGS.items()}

WEB_DIRECTORY = "./web"  # chat_stream.js shows a Chat node's reply as it is written, then its tokens and cost

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
