"""Shared pieces of the knowledge pack: socket names, the knowledge-base handle, the home and its folders.

The library (`partyflow.knowledge`) needs NumPy and the document libraries of the `knowledge` extra, so it is
imported when a node runs, never when the pack loads: without the extra the nodes are listed and explain what to
install when used.
"""

from __future__ import annotations

import dataclasses
import importlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import folder_paths

from partyflow.config import Home

CATEGORY = "partyflow/knowledge"
KNOWLEDGE_BASE = "KNOWLEDGE_BASE"
"""A `KBHandle`: the name of a knowledge base in the home (and the LLM provider to use with it)."""
DOCUMENTS = "DOCUMENTS"
"""A list of loaded documents as dicts: path, text, content_hash, format."""
CHUNKS = "CHUNKS"
"""A list of chunks as dicts: text, heading, page, seq, tokens, source."""
EMBEDDINGS = "EMBEDDINGS"
"""A list of vectors (lists of floats), the same socket type as the LLM pack's Embeddings node."""
JSON = "JSON"
TOOL = "TOOL"

MODES = ("hybrid", "naive", "keyword", "local", "global", "mix")  # partyflow.knowledge.MODES, hybrid first


@dataclass(frozen=True)
class KBHandle:
    """Which knowledge base: nodes open it per call, so a handle pickles and caches safely."""

    name: str
    llm: str | None = None  # a provider overriding the knowledge base's configured one

    def __str__(self) -> str:
        return f"knowledge base {self.name}"


def current_home() -> Home:
    return Home(Path(folder_paths.base_path))


def library() -> Any:
    try:
        return importlib.import_module("partyflow.knowledge")
    except ImportError as exc:
        raise RuntimeError(f"knowledge bases need the 'knowledge' extra ({exc.name} is missing): "
                           "pip install 'partyflow[knowledge]'") from None


def model_manager() -> Any:
    from partyflow.nodes.host import current_host_or_none

    host = current_host_or_none()
    return getattr(host, "models", None) if host is not None else None


def model_usage() -> dict[str, Any]:
    """The running engine's usage ledger (labelled with this prompt and node) and routers' health book, for
    provider and router embedders; empty outside a partyflow engine (embedders then open the home's ledger)."""
    from partyflow.nodes.host import current_host_or_none, current_scope

    host = current_host_or_none()
    services = getattr(host, "usage", None) if host is not None else None
    if services is None:
        return {}
    from partyflow.llm.usage.ledger import CallLabels

    scope = current_scope()
    labels = CallLabels() if scope is None else CallLabels(
        prompt_id=scope.prompt_id, node_id=scope.node_id, user=scope.user, workflow=scope.workflow)
    return {"meter": services.meter_for(current_home().config_file, labels), "health": services.health}


@contextmanager
def open_kb(handle: Any):
    """The knowledge base a handle names, closed when the block ends; errors become ValueErrors for the editor."""
    if not isinstance(handle, KBHandle):
        raise TypeError(f"expected a knowledge base from the Knowledge Base node, got {type(handle).__name__}")
    knowledge = library()
    try:
        kb = knowledge.KnowledgeBase.open(current_home(), handle.name, manager=model_manager(), **model_usage())
        if handle.llm and handle.llm != kb.config.llm:  # for this call only; the stored settings stay
            kb.config = dataclasses.replace(kb.config, llm=handle.llm)
    except knowledge.KnowledgeError as exc:
        raise ValueError(str(exc)) from None
    try:
        yield kb
    except knowledge.KnowledgeError as exc:
        raise ValueError(str(exc)) from None
    finally:
        kb.close()


def confined(base: Path, relative: str) -> Path:
    """A path under one of the home's folders; refuses escapes (workflows may come from anyone)."""
    relative = relative.strip()
    if not relative:
        raise ValueError("a path is required")
    try:
        return current_home().confine(base, relative)
    except PermissionError as exc:
        raise ValueError(str(exc)) from None


def progress_bar(total: int) -> Any:
    from comfy.utils import ProgressBar

    return ProgressBar(max(total, 1))
