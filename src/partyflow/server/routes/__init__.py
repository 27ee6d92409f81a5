"""ComfyUI's HTTP routes, one module per area; each exposes `ROUTES` as (method, path, handler) rows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]


def add_routes(app: web.Application, routes: Iterable[Route]) -> None:
    """Register each route at its path and under `/api`, as ComfyUI does (the frontend uses `/api/...`)."""
    for method, path, handler in routes:
        for prefix in ("", "/api"):
            app.router.add_route(method, prefix + path, handler)
