"""Knowledge bases: documents to chunks, embeddings, keyword and vector indexes, a knowledge graph, and retrieval in
six modes with citations. A plain library (it knows nothing of nodes); `builtin_nodes.knowledge` wraps it."""

from partyflow.knowledge.base import (
    MODES,
    Citation,
    IngestReport,
    KBConfig,
    KnowledgeBase,
    SearchResult,
    delete_base,
    list_bases,
)
from partyflow.knowledge.chunking import Chunk, split_text
from partyflow.knowledge.errors import DocumentError, ExtractionError, KnowledgeError
from partyflow.knowledge.loaders import Document, load_file, load_folder

__all__ = [
    "MODES", "Chunk", "Citation", "Document", "DocumentError", "ExtractionError", "IngestReport", "KBConfig",
    "KnowledgeBase", "KnowledgeError", "SearchResult", "delete_base", "list_bases", "load_file", "load_folder",
    "split_text",
]
