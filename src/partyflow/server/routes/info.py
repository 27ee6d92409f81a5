"""Discovery routes: object_info, models, embeddings, extensions, system_stats, features, i18n, metrics, and the
panels recent frontends ask for that partyflow has nothing for yet (answered with empty values, not 404s)."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from aiohttp import web

from partyflow import __version__
from partyflow.server.context import context
from partyflow.server.errors import not_found
from partyflow.server.routes import Route
from partyflow.server.routes.files import web_directories


async def get_object_info(request: web.Request) -> web.Response:
    engine = context(request).engine
    info = await asyncio.to_thread(engine.object_info)  # INPUT_TYPES may scan model folders
    return web.json_response(info)


async def get_object_info_class(request: web.Request) -> web.Response:
    engine = context(request).engine
    name = request.match_info["class_type"]
    return web.json_response(await asyncio.to_thread(engine.object_info, name))


def _folders(request: web.Request) -> dict[str, tuple[list[str], set[str]]]:
    return context(request).engine.host.folder_names_and_paths


def _files(directories: list[str], extensions: set[str]) -> list[str]:
    found: set[str] = set()
    for directory in directories:
        root = Path(directory)
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith(".") or (extensions and Path(name).suffix.lower() not in extensions):
                    continue
                found.add((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(found)


async def get_models(request: web.Request) -> web.Response:
    return web.json_response(sorted(_folders(request)))


async def get_model_folder(request: web.Request) -> web.Response:
    folder = request.match_info["folder"]
    entry = _folders(request).get(folder)
    if entry is None:
        return not_found(f"no model folder {folder!r}", "GET /models lists the folders")
    return web.json_response(await asyncio.to_thread(_files, list(entry[0]), set(entry[1])))


async def get_embeddings(request: web.Request) -> web.Response:
    entry = _folders(request).get("embeddings")
    names = await asyncio.to_thread(_files, list(entry[0]), set(entry[1])) if entry else []
    return web.json_response([name.rsplit(".", 1)[0] for name in names])


async def get_extensions(request: web.Request) -> web.Response:
    """The .js files of every pack's WEB_DIRECTORY, as URLs under /extensions/<pack>/."""
    directories = web_directories(request)

    def scan() -> list[str]:
        urls = []
        for pack, directory in sorted(directories.items()):
            for path in sorted(Path(directory).rglob("*.js")):
                urls.append(f"/extensions/{pack}/{path.relative_to(directory).as_posix()}")
        return urls

    return web.json_response(await asyncio.to_thread(scan))


def _memory() -> tuple[int, int]:
    try:
        pages, free, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return pages * size, free * size
    except (ValueError, OSError, AttributeError):
        return 0, 0


# The ComfyUI release whose HTTP and WebSocket API partyflow answers like (what `comfyui_version` tells clients that
# check versions before using a feature); partyflow's own version is `partyflow_version`.
COMFYUI_API_VERSION = "0.3.75"
# ComfyUI's switch for its built-in manager; partyflow's manager routes are always served (behind the policy)
MANAGER_FLAG = "--enable-manager"


def _package_version(name: str) -> str:
    """An installed distribution's version from its metadata (no import: torch takes seconds to import)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def _frontend_version() -> str:
    return _package_version("comfyui-frontend-package")


def _safe_argv(argv: list[str], token: str | None) -> list[str]:
    """sys.argv without the API token (it may have been given as --token on the command line)."""
    out, hide_next = [], False
    for arg in argv:
        if hide_next or (token and token in arg):
            out.append("***" if hide_next or arg == token else arg.replace(token or "", "***"))
            hide_next = False
            continue
        hide_next = arg == "--token"
        out.append("--token=***" if arg.startswith("--token=") else arg)
    return out


def _models_stats(engine: Any) -> dict[str, Any]:
    """Loaded local models and the model manager's budget (issue 3, item 4); paths relative to models/."""
    models = [{"name": info.name, "path": _under(info.path, engine.home.models), "bytes": info.bytes,
               "last_used": info.last_used} for info in engine.loaded_models()]
    manager = engine.host.models
    budget = {"models_memory_budget": manager.budget_bytes if manager else 0,
              "models_memory_used": manager.used_bytes if manager else 0}
    return {"models": models, "partyflow": budget}


def _under(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


async def get_system_stats(request: web.Request) -> web.Response:
    total, free = _memory()
    argv = _safe_argv(sys.argv, context(request).config.token)
    if MANAGER_FLAG not in argv:
        argv.append(MANAGER_FLAG)  # the editor shows its manager dialog only when ComfyUI was started with it
    return web.json_response({
        **_models_stats(context(request).engine),  # issue 3, item 4
        "system": {
            "os": os.name, "platform": platform.platform(), "python_version": sys.version,
            "comfyui_version": COMFYUI_API_VERSION, "partyflow_version": __version__,
            "required_frontend_version": _frontend_version(), "embedded_python": False,
            "pytorch_version": _package_version("torch"), "argv": argv, "ram_total": total, "ram_free": free,
        },
        "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": total, "vram_free": free,
                     "torch_vram_total": 0, "torch_vram_free": 0}],
    })


async def get_features(request: web.Request) -> web.Response:
    return web.json_response(server_features(context(request).config.max_upload_bytes))


def server_features(max_upload_bytes: int) -> dict[str, Any]:
    """What the server supports, as ComfyUI reports it (GET /features and the WebSocket's feature_flags).

    `extension.manager` tells the editor that the ComfyUI-Manager v4 API is here (routes/manager.py), with
    POSTs that refuse cross-site form submissions, so it shows its built-in manager dialog.
    """
    return {"supports_preview_metadata": False, "max_upload_size": max_upload_bytes,
            "extension": {"manager": {"supports_v4": True, "supports_csrf_post": True}},
            # the manager dialog browses this server's catalogs (routes/registry.py, web/partyflow_registry.js)
            "partyflow": {"registry": True}}


async def get_i18n(request: web.Request) -> web.Response:
    return web.json_response({})


async def empty_list(request: web.Request) -> web.Response:
    return web.json_response([])


async def empty_object(request: web.Request) -> web.Response:
    return web.json_response({})


async def get_metrics(request: web.Request) -> web.Response:
    ctx = context(request)
    remaining = ctx.engine.queue.known_remaining()
    ctx.metrics.prompts_pending.set(max(remaining - (1 if ctx.worker.current else 0), 0))
    body, content_type = ctx.metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


ROUTES: list[Route] = [
    ("GET", "/object_info", get_object_info),
    ("GET", "/object_info/{class_type}", get_object_info_class),
    ("GET", "/models", get_models),
    ("GET", "/models/{folder}", get_model_folder),
    ("GET", "/embeddings", get_embeddings),
    ("GET", "/extensions", get_extensions),
    ("GET", "/system_stats", get_system_stats),
    ("GET", "/features", get_features),
    ("GET", "/i18n", get_i18n),
    ("GET", "/global_subgraphs", empty_object),
    ("GET", "/experiment/models", empty_list),  # the frontend calls .filter() on it
]
