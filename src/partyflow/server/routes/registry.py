"""The manager dialog's catalog, served from the home's own catalog channels in the Comfy Registry API's shapes.

The editor's manager dialog browses and searches packs by calling the Comfy Registry (api.comfy.org, and Algolia
for search) straight from the browser. partyflow is offline-first and installs only what its configured catalogs
list, through its policy and scans, so the dialog must see that same catalog: the server's small frontend extension
(`server/web/partyflow_registry.js`) sends the dialog's registry requests here instead, and makes its Algolia
requests fail at once so the dialog falls back to the registry search it sends here too.

Only the calls the dialog makes are answered: list (`/nodes`), search (`/nodes/search`), one pack (`/nodes/{id}`),
its versions, the bulk version lookup of installed packs, and the pack of a node class (`/comfy-nodes/{name}/node`,
for a workflow's missing nodes). Anything else is a JSON 404.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from partyflow.config import ConfigError
from partyflow.manager.catalog import CatalogEntry
from partyflow.manager.errors import ManagerError
from partyflow.server.context import context
from partyflow.server.errors import BadJSON, bad_request, json_error, not_found, read_json
from partyflow.server.routes import Route

PREFIX = "/partyflow/registry"
DEFAULT_LIMIT = 64
MAX_LIMIT = 500
NIGHTLY = "nightly"


def _catalog(request: web.Request) -> Any:
    from partyflow.manager import catalog

    # a channel never fetched is fetched once (as the mappings route does); afterwards the cache answers
    return catalog.load(context(request).engine.home)


async def _load(request: web.Request) -> Any:
    try:
        return await asyncio.to_thread(_catalog, request)
    except (ManagerError, ConfigError) as exc:
        raise web.HTTPBadGateway(text=str(exc)) from None


def pack_json(entry: CatalogEntry, node_types: Iterable[str] = ()) -> dict[str, Any]:
    """A registry Node: what the dialog's cards and info panel read."""
    publisher = entry.publisher or entry.author or ""
    return {
        "id": entry.id, "name": entry.title, "description": entry.description, "author": entry.author,
        "repository": entry.reference, "tags": list(entry.tags), "license": str(entry.extra.get("license") or ""),
        "icon": str(entry.extra.get("icon") or ""), "category": "", "downloads": 0, "rating": 0,
        "github_stars": 0, "status": "NodeStatusActive",
        # the dialog installs an "Unclaimed" pack at its nightly version: a catalog entry without a version
        "publisher": {"id": publisher or "unclaimed", "name": publisher or "Unclaimed"},
        "latest_version": version_json(entry),
        "comfy_nodes": sorted(node_types), "partyflow_channel": entry.channel,
    }


def version_json(entry: CatalogEntry) -> dict[str, Any]:
    version = entry.version or NIGHTLY
    return {"id": f"{entry.id}@{version}", "node_id": entry.id, "version": version, "changelog": "",
            "createdAt": str(entry.extra.get("created_at") or ""), "deprecated": False,
            "status": "NodeVersionStatusActive", "dependencies": list(entry.pip), "supported_os": [],
            "supported_accelerators": [], "downloadUrl": ""}


def _page(request: web.Request) -> tuple[int, int]:
    try:
        limit = int(request.query.get("limit", DEFAULT_LIMIT))
        page = int(request.query.get("page", 1))
    except ValueError:
        raise web.HTTPBadRequest(text="limit and page must be integers") from None
    return min(max(limit, 1), MAX_LIMIT), max(page, 1)


def _listing(entries: list[dict[str, Any]], limit: int, page: int) -> dict[str, Any]:
    start = (page - 1) * limit
    return {"nodes": entries[start:start + limit], "total": len(entries), "page": page, "limit": limit,
            "totalPages": max(math.ceil(len(entries) / limit), 1)}


def _node_types(loaded: Any) -> dict[str, list[str]]:
    """Pack id -> the node classes the catalog's node map says it provides."""
    by_url = loaded.node_map.nodes
    out: dict[str, list[str]] = {}
    for entry in loaded.latest().values():
        for url in (entry.reference, *entry.files):
            if url in by_url:
                out.setdefault(entry.id, []).extend(by_url[url])
    return out


async def list_packs(request: web.Request) -> web.Response:
    try:
        limit, page = _page(request)
        loaded = await _load(request)
    except web.HTTPException as exc:
        return json_error(exc.status, "registry_error", exc.text or exc.reason)
    types = _node_types(loaded)
    wanted = set(request.query.getall("node_id", []))  # the dialog looks installed packs up by id
    packs = [pack_json(e, types.get(e.id, ())) for e in sorted(loaded.latest().values(), key=_order)
             if not wanted or e.id in wanted]
    return web.json_response(_listing(packs, limit, page))


async def search_packs(request: web.Request) -> web.Response:
    try:
        limit, page = _page(request)
        loaded = await _load(request)
    except web.HTTPException as exc:
        return json_error(exc.status, "registry_error", exc.text or exc.reason)
    words = (request.query.get("search") or "").casefold().split()
    node_query = (request.query.get("comfy_node_search") or "").casefold()
    types = _node_types(loaded)
    found = []
    for entry in sorted(loaded.latest().values(), key=_order):
        text = " ".join([entry.id, entry.title, entry.description, entry.author, *entry.tags]).casefold()
        if words and not all(word in text for word in words):
            continue
        if node_query and not any(node_query in name.casefold() for name in types.get(entry.id, ())):
            continue
        found.append(pack_json(entry, types.get(entry.id, ())))
    return web.json_response(_listing(found, limit, page))


async def get_pack(request: web.Request) -> web.Response:
    entry = await _entry(request)
    if isinstance(entry, web.Response):
        return entry
    return web.json_response(pack_json(entry))


async def get_pack_versions(request: web.Request) -> web.Response:
    ident = request.match_info["pack_id"]
    try:
        loaded = await _load(request)
    except web.HTTPException as exc:
        return json_error(exc.status, "registry_error", exc.text or exc.reason)
    versions = [version_json(e) for e in loaded.entries if e.id == ident]
    if not versions:
        return not_found(f"no pack {ident!r} in the configured catalogs")
    return web.json_response(list({v["version"]: v for v in versions}.values()))


async def bulk_versions(request: web.Request) -> web.Response:
    """`{"node_versions": [{"node_id", "version"}]}` -> `{"node_versions": [{"identifier", "status",
    "node_version"?}]}`, as the registry answers for the dialog's installed tab."""
    try:
        body = await read_json(request, default={})
    except BadJSON as exc:
        return bad_request("Invalid request body", str(exc))
    wanted = body.get("node_versions") if isinstance(body, dict) else None
    if not isinstance(wanted, list):
        return bad_request("node_versions must be a list of {node_id, version}")
    try:
        loaded = await _load(request)
    except web.HTTPException as exc:
        return json_error(exc.status, "registry_error", exc.text or exc.reason)
    answers = []
    for item in wanted[:MAX_LIMIT]:
        if not isinstance(item, dict) or not isinstance(item.get("node_id"), str):
            continue
        ident, version = item["node_id"], item.get("version")
        match = next((e for e in loaded.entries if e.id == ident and (e.version or NIGHTLY) == version), None)
        match = match or next((e for e in loaded.entries if e.id == ident), None)
        identifier = {"node_id": ident, "version": version}
        if match is None:
            answers.append({"identifier": identifier, "status": "not_found"})
        else:
            answers.append({"identifier": identifier, "status": "success", "node_version": version_json(match)})
    return web.json_response({"node_versions": answers})


async def pack_of_node(request: web.Request) -> web.Response:
    """`/comfy-nodes/{class}/node`: the pack providing a node class, from the catalogs' node maps (how the dialog
    finds what to install for a workflow's missing nodes)."""
    name = request.match_info["node_name"]
    try:
        loaded = await _load(request)
    except web.HTTPException as exc:
        return json_error(exc.status, "registry_error", exc.text or exc.reason)
    types = _node_types(loaded)
    latest = loaded.latest()
    for ident in sorted(types, key=lambda i: _order(latest[i])):
        if name in types[ident]:
            return web.json_response(pack_json(latest[ident], types[ident]))
    return not_found(f"no configured catalog lists a pack with node {name!r}")


async def unavailable(request: web.Request) -> web.Response:
    return not_found("this registry call is not served by partyflow",
                     "partyflow's manager dialog browses the configured catalogs only")


async def _entry(request: web.Request) -> CatalogEntry | web.Response:
    ident = request.match_info["pack_id"]
    try:
        loaded = await _load(request)
    except web.HTTPException as exc:
        return json_error(exc.status, "registry_error", exc.text or exc.reason)
    entry = loaded.latest().get(ident)
    return entry if entry is not None else not_found(f"no pack {ident!r} in the configured catalogs")


def _order(entry: CatalogEntry) -> tuple[int, str]:
    return (-entry.priority, entry.title.casefold())


ROUTES: list[Route] = [
    ("GET", f"{PREFIX}/nodes", list_packs),
    ("GET", f"{PREFIX}/nodes/search", search_packs),
    ("GET", f"{PREFIX}/nodes/{{pack_id}}", get_pack),
    ("GET", f"{PREFIX}/nodes/{{pack_id}}/versions", get_pack_versions),
    ("POST", f"{PREFIX}/bulk/nodes/versions", bulk_versions),
    ("GET", f"{PREFIX}/comfy-nodes/{{node_name}}/node", pack_of_node),
    ("*", f"{PREFIX}/{{rest:.*}}", unavailable),
]
