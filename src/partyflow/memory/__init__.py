"""Conversation memory: sessions in the home's SQLite store, windows, and summaries. Knows nothing of nodes."""

from partyflow.memory.session import SUMMARY_HEADING, MemoryContext, SessionMemory, summarize
from partyflow.memory.store import SessionInfo, SessionStore, StoredMessage, estimate_tokens
from partyflow.memory.window import safe_start, window

__all__ = [
    "SUMMARY_HEADING", "MemoryContext", "SessionInfo", "SessionMemory", "SessionStore", "StoredMessage",
    "estimate_tokens", "safe_start", "summarize", "window",
]
