"""Workflow templates for the editor's template browser: partyflow's starter workflows and packs' examples.

ComfyUI lists each pack's `example_workflows/*.json` at GET /workflow_templates as `{pack: [names]}` and serves
them at /workflow_templates/<pack>/<name>.json (a thumbnail beside them as <name>.jpg). We keep that convention for
the packs in `custom_nodes/`, and list partyflow's own starters under the module `partyflow`, so a new user's
first screen (the template browser) offers a workflow built from our nodes instead of an empty list.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from partyflow.server.context import context
from partyflow.server.errors import not_found, path_refused
from partyflow.server.paths import PathRefused, confine
from partyflow.server.routes import Route
from partyflow.server.routes.files import file_response

STARTER_MODULE = "partyflow"
STARTERS = Path(__file__).resolve().parent.parent / "starter_workflows"
EXAMPLES_FOLDER = "example_workflows"  # ComfyUI's folder name inside a pack
THUMBNAILS = (".jpg", ".jpeg", ".png", ".webp")


def template_folders(custom_nodes: Path) -> dict[str, Path]:
    """module name -> folder of its template files: the starters first, then each enabled pack's examples."""
    folders = {STARTER_MODULE: STARTERS}
    if custom_nodes.is_dir():
        for pack in sorted(custom_nodes.iterdir()):
            examples = pack / EXAMPLES_FOLDER
            if not pack.name.startswith(".") and pack.name not in folders and examples.is_dir():
                folders[pack.name] = examples
    return folders


def _names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.json") if p.is_file() and not p.name.startswith("."))


async def list_templates(request: web.Request) -> web.Response:
    custom_nodes = context(request).engine.home.custom_nodes

    def scan() -> dict[str, list[str]]:
        listed = {module: _names(folder) for module, folder in template_folders(custom_nodes).items()}
        return {module: names for module, names in listed.items() if names}

    return web.json_response(await asyncio.to_thread(scan))


async def get_template(request: web.Request) -> web.StreamResponse:
    """One template file (.json) or its thumbnail; nothing else in the folder is served."""
    module, name = request.match_info["module"], request.match_info["file"]
    folder = template_folders(context(request).engine.home.custom_nodes).get(module)
    if folder is None:
        return not_found(f"no workflow templates for {module!r}", "GET /workflow_templates lists them")
    if Path(name).suffix.lower() not in (".json", *THUMBNAILS):
        return not_found("templates are .json files and their thumbnails")
    try:
        path = confine(folder, name)
    except PathRefused as exc:
        return path_refused(exc)
    if not path.is_file():
        return not_found("No such template", name)
    return file_response(path)


ROUTES: list[Route] = [
    ("GET", "/workflow_templates", list_templates),
    ("GET", "/workflow_templates/{module}/{file}", get_template),
]
