"""`partyflow serve`: the ComfyUI-compatible server on this home."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Literal

import typer

from partyflow.cli.common import EXIT_INVALID, HomeOption, home_from, open_engine, user_errors
from partyflow.server.config import DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_PORT

TOKEN_ENV = "PARTYFLOW_API_TOKEN"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", help="TCP port (0 picks a free one)")] = DEFAULT_PORT,
    listen: Annotated[str, typer.Option("--listen", help="address to bind; anything but loopback needs a token")]
    = "127.0.0.1",
    token: Annotated[str | None, typer.Option("--token", envvar=TOKEN_ENV, show_envvar=True,
                                              help="API token clients must send (Authorization: Bearer)")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="allow a non-loopback --listen without a token")]
    = False,
    log_format: Annotated[str, typer.Option("--log-format", help="text or json")] = "text",
    multi_user: Annotated[bool, typer.Option("--multi-user", help="separate data per comfy-user header")] = False,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="largest accepted request body")]
    = DEFAULT_MAX_UPLOAD_BYTES / (1024 * 1024),
    shutdown_grace: Annotated[float, typer.Option("--shutdown-grace", help="seconds SIGTERM waits for the running "
                                                  "prompt before re-queuing it")] = 8.0,
    front_end_root: Annotated[Path | None, typer.Option("--front-end-root", help="serve this frontend build "
                                                         "(a folder with index.html) instead of the installed "
                                                         "comfyui-frontend-package")] = None,
    trusted_host: Annotated[list[str] | None, typer.Option("--trusted-host", help="another Host name a loopback "
                                                           "server answers (e.g. behind a local proxy)")] = None,
    health_interval: Annotated[float | None, typer.Option("--health-interval", help="import every enabled pack in "
                                                          "the sandbox every N seconds and publish the result on "
                                                          "/metrics (default: [server] health_check_interval; 0 "
                                                          "is off)")] = None,
    home: HomeOption = None,
) -> None:
    """Serve ComfyUI's HTTP/WebSocket API (clients, node packs' routes and /metrics) until SIGTERM."""
    from partyflow.channels import channels_extension
    from partyflow.server.config import ServerConfig, ServerConfigError
    from partyflow.server.frontend import FrontendNotFound, frontend_extension
    from partyflow.server.logs import configure
    from partyflow.server.openai_api import openai_extension
    from partyflow.server.runner import serve as run_server

    if log_format not in ("text", "json"):
        typer.echo("error: --log-format must be text or json", err=True)
        raise typer.Exit(EXIT_INVALID)
    fmt: Literal["text", "json"] = "json" if log_format == "json" else "text"
    configure(fmt, secrets=[token] if token else [])
    logging.getLogger("partyflow.access").setLevel(logging.WARNING if fmt == "text" else logging.INFO)
    try:
        root = ctx.find_root().obj
        config = ServerConfig(host=listen, port=port, token=token or None, insecure=insecure,
                              security_level=root.get("security_level") if isinstance(root, dict) else None,
                              max_upload_bytes=int(max_upload_mb * 1024 * 1024), multi_user=multi_user,
                              log_format=fmt, shutdown_grace_s=shutdown_grace,
                              trusted_hosts=tuple(trusted_host or ()),
                              health_interval_s=health_interval).check()
    except ServerConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    try:
        frontend = frontend_extension(front_end_root)
    except FrontendNotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    with user_errors():
        engine = open_engine(home_from(ctx, home))
    try:
        extensions = [openai_extension(engine), channels_extension(engine), frontend]
        restart = asyncio.run(run_server(engine, config, extensions=extensions, on_ready=_announce))
    except ServerConfigError as exc:  # the address could not be bound
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    finally:
        engine.close()
    if restart:
        _restart()
    _exit_if_nodes_hang()


def _restart() -> None:
    """Replace this process with a fresh `partyflow` of the same arguments (new packs load on start), as ComfyUI
    restarts itself after the manager changed packs. Everything durable is committed: the engine is closed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "partyflow", *sys.argv[1:]])


def _announce(url: str) -> None:
    print(f"partyflow listening on {url}", flush=True)


def _exit_if_nodes_hang(wait: float = 2.0) -> None:
    """A node that ignores interrupts would keep its worker thread, and so the process, alive after shutdown.

    Everything durable is committed by now (the queue re-queues that prompt on the next start), so exit anyway.
    Idle pool threads end by themselves once the engine closed its pool.
    """
    deadline = time.monotonic() + wait
    for thread in threading.enumerate():
        if thread.name.startswith("partyflow-node"):
            thread.join(max(deadline - time.monotonic(), 0))
    busy = [t for t in threading.enumerate() if t.name.startswith("partyflow-node") and t.is_alive()]
    if busy:
        logging.getLogger("partyflow.server").warning("%d node thread(s) ignore the interrupt; exiting without "
                                                      "them", len(busy))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
