"""The connected WebSocket clients and their outgoing messages.

Each client has its own bounded outbox drained by its own writer task, so one slow reader never delays the others.
A client whose outbox passes the limits (bytes or messages) is disconnected with a log line rather than buffered
without bound; ComfyUI clients reconnect and re-read the queue state. All methods run on the server's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, web

logger = logging.getLogger("partyflow.server.ws")


@dataclass(eq=False)
class Client:
    client_id: str
    ws: web.WebSocketResponse
    abort: Callable[[], None]
    user: str | None = None  # the signed-in user; None for the local admin or the server token
    sees_all: bool = True    # admins (and single-user servers) see every prompt's events
    outbox: deque[str] = field(default_factory=deque)
    pending_bytes: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    writer: asyncio.Task[None] | None = None


class ClientHub:
    def __init__(self, *, max_pending_bytes: int, max_pending_messages: int,
                 on_count: Callable[[int], None] = lambda n: None,
                 on_drop: Callable[[str], None] = lambda reason: None) -> None:
        self.max_pending_bytes = max_pending_bytes
        self.max_pending_messages = max_pending_messages
        self._clients: dict[str, Client] = {}
        self._on_count = on_count
        self._on_drop = on_drop

    def __len__(self) -> int:
        return len(self._clients)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._clients

    def attach(self, client_id: str, ws: web.WebSocketResponse, abort: Callable[[], None], *,
               user: str | None = None, sees_all: bool = True) -> Client:
        """Register a connected socket; a reconnect with the same id replaces the old socket, as in ComfyUI —
        unless the id belongs to another user's socket: then the newcomer gets an id of its own."""
        old = self._clients.get(client_id)
        if old is not None and old.user != user:
            client_id = uuid.uuid4().hex
            old = None
        if old is not None:
            self._close(old)
        client = Client(client_id, ws, abort, user=user, sees_all=sees_all)
        client.writer = asyncio.get_running_loop().create_task(self._write(client), name=f"ws-writer-{client_id}")
        self._clients[client_id] = client
        self._on_count(len(self._clients))
        return client

    def detach(self, client: Client) -> None:
        if self._clients.get(client.client_id) is client:
            del self._clients[client.client_id]
            self._on_count(len(self._clients))
        self._close(client)

    def send(self, message: dict[str, Any], client_id: str | None = None, owner: str | None = None) -> None:
        """Queue a `{"type", "data"}` message for one client, or for every client when `client_id` is None.

        A message about a prompt a signed-in user queued (`owner`) reaches only that user's sockets and those
        that see everything (admins); nobody else learns of other users' prompts, even by guessing a client id.
        """
        text = json.dumps(message, default=str, ensure_ascii=False)
        if client_id is None:
            for client in list(self._clients.values()):
                if owner is None or client.sees_all or client.user == owner:
                    self._enqueue(client, text)
        elif (client := self._clients.get(client_id)) is not None:
            if owner is None or client.sees_all or client.user == owner:
                self._enqueue(client, text)

    def send_to(self, client: Client, message: dict[str, Any]) -> None:
        self._enqueue(client, json.dumps(message, default=str, ensure_ascii=False))

    async def close_all(self, timeout: float = 1.0) -> None:
        """Say goodbye (close code 1001, going away) to every client, then drop whoever has not answered."""
        clients = list(self._clients.values())

        async def goodbye(client: Client) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.ws.close(code=WSCloseCode.GOING_AWAY), timeout)

        await asyncio.gather(*(goodbye(c) for c in clients))
        for client in clients:
            self.detach(client)
        writers = [c.writer for c in clients if c.writer is not None]
        if writers:
            await asyncio.gather(*writers, return_exceptions=True)

    def _enqueue(self, client: Client, text: str) -> None:
        if client.closed:
            return
        client.outbox.append(text)
        client.pending_bytes += len(text)
        if client.pending_bytes > self.max_pending_bytes or len(client.outbox) > self.max_pending_messages:
            logger.warning("disconnecting WebSocket client %s: it is not reading (%d messages, %d bytes waiting)",
                           client.client_id, len(client.outbox), client.pending_bytes)
            self._on_drop("slow_reader")
            self.detach(client)
            return
        client.wake.set()

    def _close(self, client: Client) -> None:
        """Stop at once: drop the outbox and abort the transport (a polite close would wait on the stuck reader)."""
        if client.closed:
            return
        client.closed = True
        client.outbox.clear()
        client.pending_bytes = 0
        client.wake.set()
        client.abort()

    async def _write(self, client: Client) -> None:
        try:
            while not client.closed:
                if not client.outbox:
                    client.wake.clear()
                    await client.wake.wait()
                    continue
                text = client.outbox.popleft()
                client.pending_bytes -= len(text)
                await client.ws.send_str(text)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass  # the socket went away; the handler detaches the client
        except Exception:
            logger.exception("WebSocket writer for %s failed", client.client_id)
