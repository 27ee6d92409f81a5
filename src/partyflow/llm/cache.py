"""An opt-in response cache: deterministic requests answered once, then served from a SQLite file.

Only requests that should give the same reply twice (temperature 0 or a fixed seed) are cached, keyed by the
provider, the model and a hash of the whole request. The file is shared safely across threads and processes (WAL
mode, one short-lived connection per operation), so repeated workflow runs and parallel workers reuse answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path

from partyflow.config import Home
from partyflow.llm.types import ChatChunk, ChatModel, ChatRequest, ChatResponse, ToolCallDelta

CACHE_FILE = "llm_cache.sqlite"
"""The home's response cache, beside state.sqlite rather than in it: cached replies are bulk, reproducible data
that must not contend for the write lock of the queue and history, and deleting the file is a safe way to clear
it."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_responses (
    key TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""


class ResponseCache:
    """Replies by request, in the SQLite file at `path` (created on first use)."""

    def __init__(self, path: Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._ready = False

    def get(self, provider: str, model: str, request: ChatRequest) -> ChatResponse | None:
        if not request.is_deterministic:
            return None
        with self._connect() as db:
            row = db.execute("SELECT response FROM llm_responses WHERE key = ?",
                             (self.key(provider, model, request),)).fetchone()
        return None if row is None else ChatResponse.model_validate_json(row[0])

    def put(self, provider: str, model: str, request: ChatRequest, response: ChatResponse) -> bool:
        """Store `response`; returns False (and stores nothing) for a request that is not deterministic."""
        if not request.is_deterministic:
            return False
        with self._connect() as db, db:
            db.execute("INSERT OR REPLACE INTO llm_responses VALUES (?, ?, ?, ?, ?)",
                       (self.key(provider, model, request), provider, model, response.model_dump_json(),
                        time.time()))
        return True

    def clear(self, provider: str | None = None) -> int:
        """Forget every reply (or one provider's); returns how many were removed."""
        with self._connect() as db, db:
            if provider is None:
                return db.execute("DELETE FROM llm_responses").rowcount
            return db.execute("DELETE FROM llm_responses WHERE provider = ?", (provider,)).rowcount

    def __len__(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM llm_responses").fetchone()[0]

    @staticmethod
    def key(provider: str, model: str, request: ChatRequest) -> str:
        return hashlib.sha256(f"{provider}\0{model}\0{request.fingerprint()}".encode()).hexdigest()

    def _connect(self) -> closing[sqlite3.Connection]:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=self._busy_timeout)
        if not self._ready:
            db.execute("PRAGMA journal_mode=WAL")
            with db:
                db.execute(_SCHEMA)
            self._ready = True
        return closing(db)


def home_cache(home: Home) -> ResponseCache:
    """The response cache every provider and node of `home` shares (across runs and processes)."""
    return ResponseCache(home.root / CACHE_FILE)


class CachedChatModel:
    """A `ChatModel` that answers deterministic requests from a `ResponseCache` before asking `inner`."""

    def __init__(self, inner: ChatModel, cache: ResponseCache) -> None:
        self.inner = inner
        self.cache = cache
        self.name = inner.name
        self.default_model = inner.default_model

    def __repr__(self) -> str:
        return f"CachedChatModel({self.inner!r}, cache={str(self.cache.path)!r})"

    def chat(self, request: ChatRequest) -> ChatResponse:
        if (hit := self.cache.get(self.name, self._model(request), request)) is not None:
            return hit
        response = self.inner.chat(request)
        self.cache.put(self.name, self._model(request), request, response)
        return response

    async def achat(self, request: ChatRequest) -> ChatResponse:
        hit = await asyncio.to_thread(self.cache.get, self.name, self._model(request), request)
        if hit is not None:
            return hit
        response = await self.inner.achat(request)
        await asyncio.to_thread(self.cache.put, self.name, self._model(request), request, response)
        return response

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        if (hit := self.cache.get(self.name, self._model(request), request)) is not None:
            yield from _replay(hit)
            return
        for piece in self.inner.stream(request):
            if piece.response is not None:
                self.cache.put(self.name, self._model(request), request, piece.response)
            yield piece

    async def astream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        hit = await asyncio.to_thread(self.cache.get, self.name, self._model(request), request)
        if hit is not None:
            for piece in _replay(hit):
                yield piece
            return
        async for piece in self.inner.astream(request):
            if piece.response is not None:
                await asyncio.to_thread(self.cache.put, self.name, self._model(request), request, piece.response)
            yield piece

    def close(self) -> None:
        self.inner.close()

    def _model(self, request: ChatRequest) -> str:
        return request.model or self.default_model or ""


def _replay(response: ChatResponse) -> Iterator[ChatChunk]:
    """A cached reply as a stream: all its text and tool calls in one piece, then the final chunk."""
    calls = tuple(ToolCallDelta(index=index, id=call.id, name=call.name, arguments=call.arguments)
                  for index, call in enumerate(response.tool_calls))
    if response.text or calls:
        yield ChatChunk(text=response.text, tool_calls=calls)
    yield ChatChunk(response=response)
