"""Client for the Comfy Registry HTTP API (api.comfy.org), the publisher-signed source of versioned packs.

Endpoints and JSON shapes used (checked against the registry's published OpenAPI reference):
`GET /nodes?page=&limit=` -> `{nodes: [Node], total, page, limit, totalPages}`; `GET /nodes/{id}` -> Node;
`GET /nodes/{id}/versions` -> `[NodeVersion]`; `GET /nodes/{id}/install[?version=]` -> NodeVersion.
Node: id, name, description, author, repository, publisher{id, name}, latest_version (a NodeVersion).
NodeVersion: id, node_id, version, downloadUrl (a zip archive), dependencies, deprecated, status, changelog.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from partyflow.config import Home, Settings
from partyflow.manager.errors import ManagerError

DEFAULT_URL = "https://api.comfy.org"
FLAGGED_STATUSES = frozenset({"NodeVersionStatusFlagged", "NodeVersionStatusBanned"})


class RegistryError(ManagerError):
    """The registry refused or could not be reached; the message names the URL and the status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class NodeVersion:
    node_id: str
    version: str
    download_url: str
    dependencies: tuple[str, ...] = ()
    deprecated: bool = False
    status: str = ""
    changelog: str = ""

    @property
    def flagged(self) -> bool:
        """Versions the registry flagged or banned install only with an explicit opt-in."""
        return self.status in FLAGGED_STATUSES

    @classmethod
    def from_json(cls, data: Mapping[str, Any], node_id: str = "") -> NodeVersion:
        if "version" not in data:
            raise RegistryError(f"registry answer lacks a version: {dict(data)!r:.200}")
        return cls(node_id=str(data.get("node_id") or node_id), version=str(data["version"]),
                   download_url=str(data.get("downloadUrl") or ""),
                   dependencies=tuple(map(str, data.get("dependencies") or ())),
                   deprecated=bool(data.get("deprecated", False)), status=str(data.get("status") or ""),
                   changelog=str(data.get("changelog") or ""))


@dataclass(frozen=True)
class RegistryNode:
    id: str
    name: str
    description: str = ""
    author: str = ""
    repository: str = ""
    publisher: str = ""
    latest: NodeVersion | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RegistryNode:
        latest = data.get("latest_version")
        publisher = data.get("publisher") or {}
        return cls(id=str(data["id"]), name=str(data.get("name") or data["id"]),
                   description=str(data.get("description") or ""), author=str(data.get("author") or ""),
                   repository=str(data.get("repository") or ""),
                   publisher=str(publisher.get("id") or "") if isinstance(publisher, Mapping) else "",
                   latest=NodeVersion.from_json(latest, str(data["id"]))
                   if isinstance(latest, Mapping) and "version" in latest else None,
                   raw=data)

    def catalog_json(self) -> dict[str, Any]:
        """This node as a catalog entry (install_type `cnr`), so registry packs join `list --available`."""
        return {"id": self.id, "title": self.name, "author": self.author, "description": self.description,
                "reference": self.repository, "files": [self.repository] if self.repository else [],
                "install_type": "cnr", "publisher": self.publisher or None,
                "version": self.latest.version if self.latest else None}


@dataclass(frozen=True)
class RegistryClient:
    base_url: str = DEFAULT_URL
    timeout: float = 30.0

    @classmethod
    def for_home(cls, home: Home) -> RegistryClient:
        """`[manager] registry_url` in config.toml points at a mirror or a test server."""
        url = Settings.load(home).raw.get("manager", {}).get("registry_url", DEFAULT_URL)
        return cls(base_url=str(url))

    def list_nodes(self, page: int = 1, limit: int = 100) -> tuple[list[RegistryNode], int]:
        """One page of nodes and the total number of pages."""
        data = self._get_json("/nodes", {"page": page, "limit": limit})
        nodes = [RegistryNode.from_json(n) for n in data.get("nodes") or ()]
        return nodes, int(data.get("totalPages") or 1)

    def iter_nodes(self, limit: int = 100) -> Iterator[RegistryNode]:
        page, pages = 1, 1
        while page <= pages:
            nodes, pages = self.list_nodes(page, limit)
            yield from nodes
            page += 1

    def node(self, node_id: str) -> RegistryNode:
        return RegistryNode.from_json(self._get_json(f"/nodes/{_q(node_id)}"))

    def versions(self, node_id: str) -> list[NodeVersion]:
        data = self._get_json(f"/nodes/{_q(node_id)}/versions")
        if not isinstance(data, list):
            raise RegistryError(f"registry: versions of {node_id!r} is not a list")
        return [NodeVersion.from_json(v, node_id) for v in data]

    def install_info(self, node_id: str, version: str | None = None) -> NodeVersion:
        """The version to install (the latest when `version` is None) with its download URL."""
        info = NodeVersion.from_json(
            self._get_json(f"/nodes/{_q(node_id)}/install", {"version": version} if version else None), node_id)
        if not info.download_url:
            raise RegistryError(f"registry: {node_id}@{info.version} has no download URL")
        return info

    def download(self, info: NodeVersion, dest_dir: Path, *, sha256: str | None = None) -> Path:
        """Fetch a version's zip into `dest_dir`; with `sha256` the bytes must match."""
        data = self._get(info.download_url if "://" in info.download_url else self.base_url + info.download_url)
        digest = hashlib.sha256(data).hexdigest()
        if sha256 and digest != sha256.lower():
            raise RegistryError(f"{info.node_id}@{info.version}: archive sha256 {digest} != expected {sha256}")
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / f"{info.node_id}-{info.version}.zip"
        target.write_bytes(data)
        return target

    # -- transport ---------------------------------------------------------------------------------------------

    def _get_json(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        url = self.base_url.rstrip("/") + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        try:
            return json.loads(self._get(url))
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{url}: not JSON ({exc})") from exc

    def _get(self, url: str) -> bytes:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise RegistryError(f"registry URL must be http(s): {url!r}")
        request = urllib.request.Request(url, headers={"Accept": "application/json",
                                                       "User-Agent": "partyflow-manager"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.read()
        except urllib.error.HTTPError as exc:
            what = "not found in the registry" if exc.code == 404 else f"HTTP {exc.code}"
            raise RegistryError(f"{url}: {what}", status=exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise RegistryError(f"{url}: registry unreachable ({exc}); use a catalog channel or a cached "
                                "archive to install offline") from None


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")
