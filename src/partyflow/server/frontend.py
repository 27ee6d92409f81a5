"""Serving the official ComfyUI web frontend (the `comfyui-frontend-package` wheel) at `/`.

The frontend is a prebuilt single-page app: static files plus the API routes of the core app. We serve the
installed package's `static/` folder, or any build given with `--front-end-root`, and the workflow templates
index the editor asks for (from `comfyui-workflow-templates` when installed, else an empty list so the
templates panel is empty instead of erroring). Static routes resolve after the API routes (aiohttp prefers
longer prefixes), so the frontend never hides an API path.
"""

from __future__ import annotations

import importlib
import importlib.resources
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

FRONTEND_PACKAGE = "comfyui_frontend_package"
TEMPLATES_PACKAGE = "comfyui_workflow_templates"
NO_CACHE = {"Cache-Control": "no-cache"}  # index.html names hashed assets: it must be fetched fresh on upgrades


class FrontendNotFound(RuntimeError):
    """No frontend build to serve; the message says what to install or pass."""


def installed_frontend() -> Path:
    """The `static/` folder of the installed frontend package."""
    try:
        package = importlib.import_module(FRONTEND_PACKAGE)
    except ImportError:
        raise FrontendNotFound(
            "the ComfyUI frontend is not installed: run `pip install comfyui-frontend-package`, or pass "
            "--front-end-root DIR with a frontend build") from None
    static = Path(str(importlib.resources.files(package) / "static"))
    if not (static / "index.html").is_file():
        raise FrontendNotFound(f"the installed {FRONTEND_PACKAGE} has no static/index.html ({static}); reinstall it")
    return static


def frontend_root(root: Path | None) -> Path:
    """The folder to serve: `root` when given (it must hold index.html), else the installed package's."""
    if root is None:
        return installed_frontend()
    root = Path(root).expanduser().resolve()
    if not (root / "index.html").is_file():
        raise FrontendNotFound(f"--front-end-root {root} holds no index.html; point it at a built frontend (dist/)")
    return root


def templates_root() -> Path | None:
    """The workflow templates folder of `comfyui-workflow-templates`, when that package is installed."""
    try:
        package = importlib.import_module(TEMPLATES_PACKAGE)
    except ImportError:
        return None
    folder = Path(str(importlib.resources.files(package) / "templates"))
    return folder if (folder / "index.json").is_file() else None


def frontend_extension(root: Path | None = None) -> Callable[[web.Application], None]:
    """An app extension serving the frontend at `/`; raises FrontendNotFound now, not on the first request."""
    static = frontend_root(root)
    templates = templates_root()

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(static / "index.html", headers=NO_CACHE)

    async def no_templates(request: web.Request) -> web.Response:
        return web.json_response([])

    async def no_logos(request: web.Request) -> web.Response:
        return web.json_response({})

    def install(app: web.Application) -> None:
        app.router.add_get("/", index)
        if templates is not None:
            app.router.add_static("/templates", templates, follow_symlinks=False)
        else:
            app.router.add_get("/templates/index.json", no_templates)
            app.router.add_get("/templates/index_logo.json", no_logos)
        app.router.add_static("/", static, follow_symlinks=False)

    return install
