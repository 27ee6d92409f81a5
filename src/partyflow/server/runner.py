"""Running an app until SIGTERM/SIGINT, then shutting down gracefully (what `partyflow serve` calls)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence

from aiohttp import web

from partyflow.engine.engine import Engine
from partyflow.server.app import Extension, create_app
from partyflow.server.config import ServerConfig, ServerConfigError
from partyflow.server.context import CONTEXT

logger = logging.getLogger("partyflow.server")


RESTART_HOOK = "request_restart"  # ServerContext.extra key: the manager dialog's "Apply Changes" (a restart)


async def serve(engine: Engine, config: ServerConfig, *, extensions: Sequence[Extension] = (),
                on_ready: Callable[[str], None] | None = None) -> bool:
    """Listen until a stop signal; on SIGTERM the running prompt finishes (or is re-queued) before returning.

    `on_ready` announces the bound address once (the CLI prints it for scripts to read); without one it is logged.
    Returns True when a client asked for a restart (POST /v2/manager/reboot, after installing packs): the server
    shut down the same graceful way and the caller starts a fresh process, which loads the changed packs.
    """
    app = create_app(engine, config, extensions=extensions)
    restart = asyncio.Event()
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0,
                           access_log=logging.getLogger("partyflow.access"))
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_restart() -> None:
        restart.set()
        stop.set()

    app[CONTEXT].extra[RESTART_HOOK] = request_restart
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await _listen(runner, config)
        url = bound_url(runner, config)
        if on_ready is None:
            logger.info("partyflow listening on %s", url)
        else:
            on_ready(url)
        await stop.wait()
        logger.info("stopping: finishing the running prompt (up to %.0fs)", config.shutdown_grace_s)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
    logger.info("stopped; restarting" if restart.is_set() else "stopped")
    return restart.is_set()


async def _listen(runner: web.AppRunner, config: ServerConfig) -> None:
    """Bind the socket; a port in use or an address this machine lacks is the user's to fix, not a traceback."""
    try:
        await web.TCPSite(runner, config.host, config.port).start()
    except OSError as exc:
        raise ServerConfigError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc} (another "
                                "server may be using the port: choose one with --port, or 0 for any free port)"
                                ) from None


def bound_url(runner: web.AppRunner, config: ServerConfig) -> str:
    """The URL clients use; with port 0 the port the OS picked."""
    for address in runner.addresses:
        if isinstance(address, tuple):
            host = address[0]
            host = f"[{host}]" if ":" in host else host
            return f"http://{host}:{address[1]}"
    return f"http://{config.host}:{config.port}"
