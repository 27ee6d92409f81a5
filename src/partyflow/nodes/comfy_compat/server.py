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

from partyflow.nodes.comfy_compat._located import located_file
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

    @property
    def supports(self) -> frozenset[str]:
        """Server features packs test for; `custom_nodes_from_web` tells them their WEB_DIRECTORY is served
        from the pack itself, so they never copy or link files into the host's folders."""
        return SUPPORTS

    @property
    def app(self) -> _PackApp:
        """`PromptServer.instance.app`: routes added here are mounted like `routes.get(...)` ones."""
        return _PackApp(current_host().routes)

    @property
    def sockets(self) -> dict[str, Any]:
        return {}

    @property
    def sockets_metadata(self) -> dict[str, Any]:
        return {}

    def send_progress_text(self, text: str, node_id: str, sid: str | None = None) -> None:
        """Text shown on a node while it runs (ComfyUI's `progress_text` message)."""
        current_host().emit_custom("progress_text", {"node": node_id, "text": text}, sid or self.client_id)


SUPPORTS = frozenset({"custom_nodes_from_web"})


class _PackRouter:
    """The part of aiohttp's router packs call on `app.router`; everything lands in the engine's route table."""

    frozen = False  # packs check it before adding routes; ours are collected until the server mounts them

    def __init__(self, routes: RouteTable) -> None:
        self._routes = routes

    def add_route(self, method: str, path: str, handler: Callable[..., Any], **_: Any) -> None:
        self._routes.route(method, path)(handler)

    def add_get(self, path: str, handler: Callable[..., Any], **kw: Any) -> None:
        self.add_route("GET", path, handler, **kw)

    def add_post(self, path: str, handler: Callable[..., Any], **kw: Any) -> None:
        self.add_route("POST", path, handler, **kw)

    def add_put(self, path: str, handler: Callable[..., Any], **kw: Any) -> None:
        self.add_route("PUT", path, handler, **kw)

    def add_delete(self, path: str, handler: Callable[..., Any], **kw: Any) -> None:
        self.add_route("DELETE", path, handler, **kw)

    def add_patch(self, path: str, handler: Callable[..., Any], **kw: Any) -> None:
        self.add_route("PATCH", path, handler, **kw)

    def add_static(self, prefix: str, path: str, **_: Any) -> None:
        """Files under `path` served at `prefix/<name>`, confined to that folder."""
        self.add_route("GET", prefix.rstrip("/") + "/{filename:.+}", _static_handler(path))


def _static_handler(folder: str) -> Callable[..., Any]:
    async def serve(request: Any) -> Any:
        import os

        from aiohttp import web

        root = os.path.realpath(folder)
        target = os.path.realpath(os.path.join(root, request.match_info["filename"]))
        if os.path.commonpath((root, target)) != root or not os.path.isfile(target):
            raise web.HTTPNotFound()
        return web.FileResponse(target)

    return serve


class _PackApp:
    """`PromptServer.instance.app` as packs use it: `add_routes`, `router.add_*`; middlewares and startup
    hooks are collected but never run, since a pack must not change how partyflow's server treats requests."""

    def __init__(self, routes: RouteTable) -> None:
        self.router = _PackRouter(routes)
        self.middlewares: list[Any] = []
        self.on_startup: list[Any] = []
        self.on_shutdown: list[Any] = []
        self.on_cleanup: list[Any] = []

    def add_routes(self, definitions: Any) -> list[Any]:
        for definition in definitions:
            if hasattr(definition, "prefix") and hasattr(definition, "path") and not hasattr(definition, "handler"):
                self.router.add_static(definition.prefix, str(definition.path))
            else:
                self.router.add_route(definition.method, definition.path, definition.handler)
        return []


class PromptServer:
    """Only `PromptServer.instance` is offered; partyflow's own server is not this class."""

    instance: ClassVar[_ServerView] = _ServerView()


def __getattr__(name: str) -> Any:
    if name == "__file__":
        return located_file(_REAL_FILE, "server.py")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_REAL_FILE = __file__
del __file__  # answered by __getattr__: a path in the engine's home (see _located)
