"""`create_app`: the ComfyUI-compatible HTTP/WebSocket server over one `Engine`.

Why aiohttp rather than FastAPI: ComfyUI node packs register aiohttp handlers on `PromptServer.instance.routes` and
read aiohttp's `web.Request` inside them, so mounting those routes unchanged needs aiohttp's request objects; a
second framework would mean adapting every pack's handler. aiohttp also gives us WebSockets with back-pressure and
multipart uploads with size limits in the same stack.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence

from aiohttp import web

from partyflow.access import AccessStore
from partyflow.distributed.serving import get_backend_status, queue_worker
from partyflow.engine.engine import Engine
from partyflow.nodes.host import PromptSource
from partyflow.server.access import access_middleware, audit_writer, login_routes
from partyflow.server.config import ServerConfig
from partyflow.server.context import CONTEXT, ENGINE, ServerContext
from partyflow.server.hub import ClientHub
from partyflow.server.logs import quiet_malformed_requests
from partyflow.server.metrics import Metrics
from partyflow.server.oidc import oidc_client, oidc_routes
from partyflow.server.routes import (
    add_routes,
    files,
    info,
    internal,
    jobs,
    manager,
    packs,
    prompt,
    providers,
    registry,
    templates,
    userdata,
)
from partyflow.server.security import error_middleware, origin_middleware
from partyflow.server.users import UserStore
from partyflow.server.websocket import websocket

logger = logging.getLogger("partyflow.server")

Extension = Callable[[web.Application], None]


def create_app(engine: Engine, config: ServerConfig, *, extensions: Sequence[Extension] = (),
               metrics: Metrics | None = None) -> web.Application:
    """The app for `engine`: ComfyUI's routes and WebSocket, packs' routes, /metrics, then each extension's routes.

    The queue worker starts with the app and stops with it (graceful: see `QueueWorker.stop`). The engine stays
    the caller's to close. Raises `ServerConfigError` for an unsafe config (a public address without a token).
    """
    config.check()
    # prompts of this engine now come from HTTP clients: code-running tools ask the policy with that (issue 10)
    engine.host.source = PromptSource(over_http=True, loopback=config.loopback, security_level=config.security_level)
    quiet_malformed_requests()  # a request aiohttp cannot parse is the client's fault: no traceback in our log
    access = AccessStore(engine.home.state_db)
    audit = audit_writer(engine.home)
    oidc = oidc_client(engine.settings.raw)  # None without [access.oidc] in config.toml
    middlewares = [error_middleware, origin_middleware(config),
                   access_middleware(access, server_token=config.token, audit=audit, require_login=bool(oidc))]
    app = web.Application(middlewares=middlewares, client_max_size=config.max_upload_bytes)

    metrics = metrics or Metrics()
    hub = ClientHub(max_pending_bytes=config.ws_max_pending_bytes,
                    max_pending_messages=config.ws_max_pending_messages,
                    on_count=metrics.ws_clients.set, on_drop=lambda reason: metrics.ws_dropped.labels(reason).inc())
    ctx = ServerContext(engine=engine, config=config, metrics=metrics, hub=hub,
                        users=UserStore(engine.home.user, multi_user=config.multi_user),
                        worker=queue_worker(engine, hub, metrics), access=access)  # issue 15: backend
    app[CONTEXT] = ctx
    app[ENGINE] = engine

    add_routes(app, [*prompt.ROUTES, *info.ROUTES, *files.ROUTES, *userdata.ROUTES, *templates.ROUTES,
                     *manager.ROUTES, *jobs.ROUTES, *internal.ROUTES, *registry.ROUTES,
                     *providers.ROUTES, ("GET", "/ws", websocket),
                     ("GET", "/partyflow/backend", get_backend_status)])
    manager.attach(app)
    for method, path, handler in [*login_routes(access, audit=audit, sso=oidc.config.name if oidc else None),
                                  *oidc_routes(oidc, access, audit=audit)]:
        app.router.add_route(method, path, handler)
    internal.attach(app)
    for method, path, handler in files.STATIC_ROUTES:
        app.router.add_route(method, path, handler)
    app.router.add_get("/metrics", info.get_metrics)
    packs.mount_pack_routes(app, engine.host)
    for extension in extensions:
        extension(app)

    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_on_shutdown)
    _health(app, engine, config, metrics)  # issue 14 item 4: scheduled pack health checks on /metrics
    return app


def _health(app: web.Application, engine: Engine, config: ServerConfig, metrics: Metrics) -> None:
    from partyflow.server.config import ServerConfigError
    from partyflow.server.health import attach_health_checks, interval_from

    try:
        interval = interval_from(engine.settings.raw, config.health_interval_s)
    except ValueError as exc:
        raise ServerConfigError(str(exc)) from None
    if interval > 0:
        attach_health_checks(app, engine.home, metrics.registry, interval)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CONTEXT]
    ctx.worker.start()
    yield
    await _stop(ctx)


async def _on_shutdown(app: web.Application) -> None:
    """Runs before the server waits for open requests: stop the worker and close sockets so nothing lingers."""
    await _stop(app[CONTEXT])


async def _stop(ctx: ServerContext) -> None:
    if not ctx.accepting:
        return
    ctx.accepting = False
    await ctx.worker.stop(ctx.config.shutdown_grace_s)
    await ctx.hub.close_all()
    ctx.access.close()
