"""partyflow's knowledge node pack: documents, chunks, embeddings, knowledge bases (RAG and GraphRAG) and a
search tool for agents. Written only against ComfyUI's node interface and the `partyflow.knowledge` library."""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
