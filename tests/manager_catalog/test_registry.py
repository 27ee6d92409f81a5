"""The Comfy Registry client against a loopback server that answers with the registry's JSON shapes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from partyflow.config import Home
from partyflow.manager import catalog
from partyflow.manager.registry import RegistryClient, RegistryError

from .conftest import write_config
from .helpers import serve

ZIP = b"PK\x05\x06" + b"\0" * 18  # an empty zip archive


def _version(node: str, version: str, base: str, status: str = "NodeVersionStatusActive") -> dict:
    return {"id": f"uuid-{node}-{version}", "node_id": node, "version": version, "changelog": "",
            "createdAt": "2024-05-01T10:00:00Z", "dependencies": ["alpha>=1"], "deprecated": False,
            "downloadUrl": f"{base}/cdn/{node}/{version}/node.zip", "status": status,
            "supported_os": [], "tags": []}


def _registry(base_holder: list[str]):
    """Route function: three nodes over two pages, versions, install info and the archives."""
    names = ["comfyui-tidy", "comfyui-neat", "comfyui-flagged"]

    def route(path: str):
        base = base_holder[0]
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        segs = [s for s in parts.path.split("/") if s]
        body: object
        if segs == ["nodes"]:
            page, limit = int(query.get("page", ["1"])[0]), int(query.get("limit", ["10"])[0])
            chunk = names[(page - 1) * limit: page * limit]
            body = {"nodes": [{"id": n, "name": n.title(), "author": "a", "description": "d",
                               "repository": f"https://github.com/a/{n}", "publisher": {"id": "pub", "name": "Pub"},
                               "latest_version": _version(n, "1.1.0", base)} for n in chunk],
                    "total": len(names), "page": page, "limit": limit, "totalPages": -(-len(names) // limit)}
        elif len(segs) == 2 and segs[0] == "nodes" and segs[1] in names:
            body = {"id": segs[1], "name": segs[1], "latest_version": _version(segs[1], "1.1.0", base)}
        elif len(segs) == 3 and segs[2] == "versions" and segs[1] in names:
            status = "NodeVersionStatusFlagged" if segs[1] == "comfyui-flagged" else "NodeVersionStatusActive"
            body = [_version(segs[1], v, base, status) for v in ("1.1.0", "1.0.0")]
        elif len(segs) == 3 and segs[2] == "install" and segs[1] in names:
            body = _version(segs[1], query.get("version", ["1.1.0"])[0], base)
        elif segs[:1] == ["cdn"]:
            return 200, "application/zip", ZIP
        else:
            return None
        return 200, "application/json", json.dumps(body).encode()

    return route


@pytest.fixture
def registry():
    holder = [""]
    with serve(_registry(holder)) as server:
        holder[0] = server.url
        yield server


def test_lists_pages_versions_and_install_info(registry, tmp_path: Path) -> None:
    client = RegistryClient(registry.url)
    nodes = list(client.iter_nodes(limit=2))
    assert [n.id for n in nodes] == ["comfyui-tidy", "comfyui-neat", "comfyui-flagged"]
    assert nodes[0].publisher == "pub" and nodes[0].latest is not None and nodes[0].latest.version == "1.1.0"
    assert [v.version for v in client.versions("comfyui-tidy")] == ["1.1.0", "1.0.0"]
    assert all(v.flagged for v in client.versions("comfyui-flagged"))
    info = client.install_info("comfyui-tidy", "1.0.0")
    assert info.download_url.endswith("/cdn/comfyui-tidy/1.0.0/node.zip")
    assert info.dependencies == ("alpha>=1",)
    path = client.download(info, tmp_path, sha256=hashlib.sha256(ZIP).hexdigest())
    assert path.read_bytes() == ZIP
    with pytest.raises(RegistryError, match="sha256"):
        client.download(info, tmp_path, sha256="0" * 64)
    assert "/nodes/comfyui-tidy/install?version=1.0.0" in registry.requests


def test_errors_name_the_url(registry) -> None:
    client = RegistryClient(registry.url)
    with pytest.raises(RegistryError, match="not found") as info:
        client.node("nope")
    assert info.value.status == 404
    with pytest.raises(RegistryError, match="unreachable"):
        RegistryClient("http://127.0.0.1:9", timeout=2).node("x")


def test_cnr_catalog_entries_resolve_through_the_registry(registry, home: Home, tmp_path: Path) -> None:
    client = RegistryClient(registry.url)
    chan = tmp_path / "chan"
    chan.mkdir()
    entries = [n.catalog_json() for n in client.iter_nodes()]
    (chan / "custom-node-list.json").write_text(json.dumps({"custom_nodes": entries}))
    write_config(home, f'[manager]\nregistry_url = "{registry.url}"\n'
                       f'channels = [{{name = "cnr", url = "{chan.as_uri()}"}}]\n')
    spec = catalog.resolve("comfyui-neat@1.0.0", home)
    assert (spec.kind, spec.version, spec.name) == ("url", "1.0.0", "comfyui-neat")
    assert spec.location.endswith("/cdn/comfyui-neat/1.0.0/node.zip")
