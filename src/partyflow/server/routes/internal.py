"""ComfyUI's /internal routes the editor calls: recent logs (error report, Console panel), model folder paths, and
the files of input/output/temp. Mounted like every route, with and without the /api prefix."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aiohttp import web

from partyflow.server.context import CONTEXT, context
from partyflow.server.errors import BadJSON, bad_request, read_json
from partyflow.server.log_buffer import TERMINAL_SIZE, LogBuffer
from partyflow.server.routes import Route

LOGS: web.AppKey[LogBuffer] = web.AppKey("partyflow_logs", LogBuffer)
DIRECTORY_TYPES = ("input", "output", "temp")


def attach(app: web.Application) -> None:
    """Keep the last log lines while the app runs (secrets redacted); `logs` messages go to subscribed clients."""
    ctx = app[CONTEXT]
    buffer = LogBuffer(lambda message, client_id: ctx.hub.send(message, client_id),
                       secrets=[ctx.config.token] if ctx.config.token else [])
    app[LOGS] = buffer

    async def lifetime(app: web.Application):  # type: ignore[no-untyped-def]
        buffer.install()
        yield
        buffer.uninstall()

    app.cleanup_ctx.append(lifetime)


async def get_logs(request: web.Request) -> web.Response:
    return web.json_response(request.app[LOGS].text())


async def get_raw_logs(request: web.Request) -> web.Response:
    return web.json_response({"entries": request.app[LOGS].entries(), "size": TERMINAL_SIZE})


async def subscribe_logs(request: web.Request) -> web.Response:
    try:
        body = await read_json(request, default={})
    except BadJSON as exc:
        return bad_request("Invalid request body", str(exc))
    client_id = body.get("clientId") if isinstance(body, dict) else None
    if not isinstance(client_id, str) or not client_id:
        return bad_request("clientId must be the WebSocket client's id")
    subscribers = request.app[LOGS].subscribers
    if body.get("enabled"):
        subscribers.add(client_id)
    else:
        subscribers.discard(client_id)
    return web.Response(status=200)


async def get_folder_paths(request: web.Request) -> web.Response:
    folders = context(request).engine.host.folder_names_and_paths
    return web.json_response({name: list(entry[0]) for name, entry in sorted(folders.items())})


async def get_files(request: web.Request) -> web.Response:
    kind = request.match_info["directory_type"]
    if kind not in DIRECTORY_TYPES:
        return bad_request("Invalid directory type", f"use one of {', '.join(DIRECTORY_TYPES)}")
    home = context(request).engine.home
    directory = {"input": home.input, "output": home.output, "temp": home.temp}[kind]
    return web.json_response(await asyncio.to_thread(_newest_first, directory))


def _newest_first(directory: Path) -> list[str]:
    """File names directly in `directory`, most recently changed first (hidden files left out)."""
    try:
        entries = [e for e in os.scandir(directory) if e.is_file() and not e.name.startswith(".")]
    except FileNotFoundError:
        return []
    return [e.name for e in sorted(entries, key=lambda e: -e.stat().st_mtime)]


ROUTES: list[Route] = [
    ("GET", "/internal/logs", get_logs),
    ("GET", "/internal/logs/raw", get_raw_logs),
    ("PATCH", "/internal/logs/subscribe", subscribe_logs),
    ("GET", "/internal/folder_paths", get_folder_paths),
    ("GET", "/internal/files/{directory_type}", get_files),
]
