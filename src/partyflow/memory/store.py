"""Conversation sessions in the home's state.sqlite: messages (tool calls included), metadata and a summary.

Messages are stored one row each, as the JSON of `partyflow.llm` messages, in a per-session sequence, so a session
loads back exactly (tool calls, tool results, names) and windows can be cut by sequence number. The running
summary of older turns lives on the session row with `summary_upto`, the last sequence number it covers; the
messages themselves are kept, so a summary can always be rebuilt.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from partyflow.llm import AssistantMessage, Message, dump_messages, load_messages
from partyflow.store.sqlite import StoreConnection, migrate, open_database, transaction

COMPONENT = "memory"
MIGRATIONS = [
    """
    CREATE TABLE memory_sessions (
        id TEXT PRIMARY KEY,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        summary TEXT NOT NULL DEFAULT '',
        summary_upto INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE memory_messages (
        session_id TEXT NOT NULL REFERENCES memory_sessions(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        role TEXT NOT NULL,
        message TEXT NOT NULL,
        tool_calls INTEGER NOT NULL DEFAULT 0,
        tokens INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        PRIMARY KEY (session_id, seq)
    );
    """,
]


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    message: Message
    tokens: int
    created: float


@dataclass(frozen=True)
class SessionInfo:
    id: str
    created: float
    updated: float
    metadata: dict[str, Any]
    summary: str
    summary_upto: int
    message_count: int


def estimate_tokens(message: Message) -> int:
    """A provider-neutral token estimate (about four characters a token, plus framing); good enough for windows."""
    text = message.text if hasattr(message, "text") else str(getattr(message, "content", ""))
    if isinstance(message, AssistantMessage):
        text += "".join(call.name + call.arguments for call in message.tool_calls)
    return len(text) // 4 + 4


class SessionStore:
    """Sessions in one SQLite file; thread-safe through the store's connection lock. Close it when done."""

    def __init__(self, conn: StoreConnection, *, count_tokens: Callable[[Message], int] = estimate_tokens) -> None:
        self.conn = conn
        self.count_tokens = count_tokens
        migrate(conn, COMPONENT, MIGRATIONS)

    @classmethod
    def open(cls, path: Path, **options: Any) -> SessionStore:
        """The store in the SQLite file at `path` (normally `Home.state_db`)."""
        return cls(open_database(path), **options)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, session_id: str, messages: Sequence[Message], metadata: Mapping[str, Any] | None = None,
               ) -> int:
        """Add messages at the end of the session (created if new); the last sequence number."""
        _check_id(session_id)
        now = time.time()
        rows = dump_messages(messages)
        with transaction(self.conn) as conn:
            self._ensure(conn, session_id, now, metadata)
            (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM memory_messages WHERE session_id = ?",
                                   (session_id,)).fetchone()
            conn.executemany(
                "INSERT INTO memory_messages (session_id, seq, role, message, tool_calls, tokens, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(session_id, last + i + 1, row["role"], json.dumps(row, ensure_ascii=False),
                  len(row.get("tool_calls") or ()), self.count_tokens(message), now)
                 for i, (row, message) in enumerate(zip(rows, messages, strict=True))])
            conn.execute("UPDATE memory_sessions SET updated = ? WHERE id = ?", (now, session_id))
        return last + len(rows)

    def entries(self, session_id: str, *, after: int = 0) -> list[StoredMessage]:
        """The stored messages with sequence number above `after`, in order."""
        with transaction(self.conn, write=False) as conn:
            rows = conn.execute("SELECT seq, message, tokens, created FROM memory_messages"
                                " WHERE session_id = ? AND seq > ? ORDER BY seq", (session_id, after)).fetchall()
        messages = load_messages([json.loads(row[1]) for row in rows])
        return [StoredMessage(row[0], message, row[2], row[3]) for row, message in zip(rows, messages, strict=True)]

    def messages(self, session_id: str, *, after: int = 0) -> tuple[Message, ...]:
        return tuple(entry.message for entry in self.entries(session_id, after=after))

    def session(self, session_id: str) -> SessionInfo | None:
        with transaction(self.conn, write=False) as conn:
            row = conn.execute("SELECT id, created, updated, metadata, summary, summary_upto FROM memory_sessions"
                               " WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                return None
            (count,) = conn.execute("SELECT COUNT(*) FROM memory_messages WHERE session_id = ?",
                                    (session_id,)).fetchone()
        return SessionInfo(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], count)

    def sessions(self) -> list[str]:
        """Session ids, most recently updated first."""
        with transaction(self.conn, write=False) as conn:
            return [row[0] for row in conn.execute("SELECT id FROM memory_sessions ORDER BY updated DESC, id")]

    def update_metadata(self, session_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Merge `values` into the session's metadata (created if new); the merged metadata."""
        _check_id(session_id)
        now = time.time()
        with transaction(self.conn) as conn:
            self._ensure(conn, session_id, now, None)
            (raw,) = conn.execute("SELECT metadata FROM memory_sessions WHERE id = ?", (session_id,)).fetchone()
            merged = {**json.loads(raw), **values}
            conn.execute("UPDATE memory_sessions SET metadata = ?, updated = ? WHERE id = ?",
                         (json.dumps(merged, ensure_ascii=False), now, session_id))
        return merged

    def set_summary(self, session_id: str, summary: str, upto: int) -> None:
        """Record that messages up to sequence `upto` are summarised by `summary`."""
        with transaction(self.conn) as conn:
            self._ensure(conn, session_id, time.time(), None)
            conn.execute("UPDATE memory_sessions SET summary = ?, summary_upto = ?, updated = ? WHERE id = ?",
                         (summary, upto, time.time(), session_id))

    def clear(self, session_id: str) -> bool:
        """Delete the session and its messages; whether it existed."""
        with transaction(self.conn) as conn:
            deleted = conn.execute("DELETE FROM memory_sessions WHERE id = ?", (session_id,)).rowcount
        return bool(deleted)

    @staticmethod
    def _ensure(conn: sqlite3.Connection, session_id: str, now: float, metadata: Mapping[str, Any] | None) -> None:
        conn.execute("INSERT INTO memory_sessions (id, created, updated) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
                     (session_id, now, now))
        if metadata:
            (raw,) = conn.execute("SELECT metadata FROM memory_sessions WHERE id = ?", (session_id,)).fetchone()
            merged = {**json.loads(raw), **metadata}
            conn.execute("UPDATE memory_sessions SET metadata = ? WHERE id = ?",
                         (json.dumps(merged, ensure_ascii=False), session_id))


def _check_id(session_id: str) -> None:
    if not isinstance(session_id, str) or not session_id.strip() or len(session_id) > 200:
        raise ValueError("a session id must be a non-empty string of at most 200 characters")
