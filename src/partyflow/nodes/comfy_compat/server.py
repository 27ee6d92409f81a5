"""ComfyUI's `server` module: `PromptServer.instance`, answered by the engine running the caller.

Packs reach the server at import time (`@PromptServer.instance.routes.get(...)`,
`PromptServer.instance.add_on_prompt_handler(...)`) and while running (`send_sync`, `client_id`). The
instance here holds no state: each attribute reads `current_host()` / `current_scope()`, so the routes a
pack declares land in the engine importing it and its messages go to that engine's clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

from partyflow.nodes.host import RouteTable, current_host, current_host_or_none, current_scope

__all__ = ["BinaryEventTypes", "PromptServer"]


class BinaryEventTypes:
    """Kinds of binary WebSocket messages, as ComfyUI numbers them."""

    PREVIEW_IMAGE = 1
    UNENCODED_PREVIEW_IMAGE = 2
    TEXT = 3
    PREVIEW_IMAGE_WITH_METADATA = 4


class _ServerView:
    """What `PromptServer.instance` answers; stateless, so one object serves every engine."""

    @property
    def routes(self) -> RouteTable:
        return current_host().routes

    @property
    def client_id(self) -> str | None:
        """The client whose prompt is running; the engine's default outside a node call."""
        scope = current_scope()
        if scope is not None and scope.client_id is not None:
            return scope.client_id
        host = current_host_or_none()
        return host.client_id if host is not None else None

    @property
    def last_node_id(self) -> str | None:
        scope = current_scope()
        return scope.node_id if scope is not None else None

    @property
    def last_prompt_id(self) -> str | None:
        scope = current_scope()
        return scope.prompt_id if scope is not None else None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The engine's event loop if it shared one, else the loop running here, else None."""
        host = current_host_or_none()
        if host is not None and host.loop is not None:
            return host.loop
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        """Send a custom message to one client (`sid`) or, with None, to every client."""
        current_host().emit_custom(event, data, sid)

    async def send(self, event: str, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    async def send_json(self, event: str, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    def add_on_prompt_handler(self, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Run `handler` on each submitted prompt's JSON before it is queued."""
        current_host().prompt_handlers.append(handler)


class PromptServer:
    """Only `PromptServer.instance` is offered; partyflow's own server is not this class."""

    instance: ClassVar[_ServerView] = _ServerView()
