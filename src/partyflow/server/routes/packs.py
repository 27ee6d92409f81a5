"""Routes node packs declared with `@PromptServer.instance.routes.get(...)`, mounted with and without `/api`.

Handlers run inside the engine's host context, so a handler that calls `PromptServer.instance.send_sync` or
`folder_paths` reaches this server's engine. A pack route that collides with ours (or another pack's) is skipped
with a warning naming it, rather than failing the server.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from partyflow.nodes.host import HostContext, host_context

logger = logging.getLogger("partyflow.server")


def mount_pack_routes(app: web.Application, host: HostContext) -> int:
    mounted = 0
    for method, path, handler in host.routes:
        if not path.startswith("/"):
            logger.warning("pack route %s %r skipped: paths must start with '/'", method, path)
            continue
        wrapped = _in_host(host, handler)
        for full in (path, "/api" + path):
            try:
                app.router.add_route(method, full, wrapped)
                mounted += 1
            except (RuntimeError, ValueError) as exc:
                logger.warning("pack route %s %s skipped: %s", method, full, exc)
    return mounted


def _in_host(host: HostContext, handler: Callable[..., Any]) -> Callable[[web.Request], Any]:
    async def call(request: web.Request) -> web.StreamResponse:
        with host_context(host):
            result = handler(request)
            if inspect.isawaitable(result):
                result = await result
        return result

    call.__name__ = getattr(handler, "__name__", "pack_route")
    call.partyflow_pack_route = True  # type: ignore[attr-defined]  # access rules: a pack's route, not ours
    return call
