"""Load the packs marked isolated through worker processes, for the engine's pack loader.

The manager records `"isolated": true` for a pack in `<home>/manager/packs.json` when it was installed with
`--isolate`. That file is read here as plain JSON (one flag per pack) rather than through the manager's classes,
so the node layer keeps depending on nothing above it. `IsolatedPacks.load` is the hook `nodes.loader.load_packs`
calls for each pack folder: it answers for isolated packs and returns None for every other pack, which then
loads in-process as before. The engine owns the `IsolatedPacks` and closes it (and so the workers) with itself.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from partyflow.config import Home
from partyflow.nodes.host import HostContext
from partyflow.nodes.isolation.client import WorkerClient, WorkerError
from partyflow.nodes.isolation.environment import python_of, venv_dir
from partyflow.nodes.isolation.proxy import make_proxy_class
from partyflow.nodes.loader import PackLoadResult
from partyflow.nodes.protocol import NodeDefinitionError

__all__ = ["IsolatedPacks", "isolated_pack_names"]

logger = logging.getLogger("partyflow.isolation")


def isolated_pack_names(home: Home) -> set[str]:
    """Names of packs the manager marked isolated (an unreadable packs.json marks none, loudly)."""
    records = home.root / "manager" / "packs.json"
    if not records.is_file():
        return set()
    try:
        packs = json.loads(records.read_text(encoding="utf-8")).get("packs", {})
    except (OSError, ValueError) as exc:
        logger.warning("cannot read %s (%s); no pack is loaded isolated", records, exc)
        return set()
    return {name for name, record in packs.items() if isinstance(record, dict) and record.get("isolated")}


class IsolatedPacks:
    """The workers of one engine's isolated packs."""

    def __init__(self, home: Home, host: HostContext, *, timeout: float = 30.0) -> None:
        self.home, self.host, self.timeout = home, host, timeout
        self.names = isolated_pack_names(home)
        self.clients: dict[str, WorkerClient] = {}

    def load(self, path: Path) -> PackLoadResult | None:
        """Load `path` through a worker if its pack is isolated; None lets the in-process loader take it."""
        path = Path(path).absolute()
        name = path.stem if path.is_file() else path.name
        if name not in self.names:
            return None
        started = time.perf_counter()
        module_name = f"custom_nodes.{name}"
        venv = venv_dir(self.home.root, name)
        client = WorkerClient(name, path, python_of(venv), self.home.root, venv=venv, timeout=self.timeout)
        try:
            info = client.start()
            mappings = {c["class_type"]: make_proxy_class(client, name, c) for c in info["classes"]}
            display = {c["class_type"]: c["display_name"] for c in info["classes"] if c.get("display_name")}
            added = self.host.registry.register_mappings(mappings, display, pack=name, python_module=module_name)
        except (WorkerError, NodeDefinitionError, KeyError, TypeError) as exc:
            client.close()
            logger.warning("Cannot import isolated pack %s: %s", path, exc)
            return PackLoadResult(name=name, path=path, module_name=module_name, ok=False,
                                  seconds=time.perf_counter() - started, error=str(exc))
        self.clients[name] = client
        web = _web_directory(info, path)
        if web is not None:
            self.host.registry.web_directories[name] = web
        return PackLoadResult(name=name, path=path, module_name=module_name, ok=True,
                              seconds=time.perf_counter() - started, node_types=tuple(added), web_directory=web)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()


def _web_directory(info: dict[str, Any], path: Path) -> Path | None:
    declared = info.get("web_directory")
    if not declared:
        return None
    web = Path(declared).resolve()
    root = (path if path.is_dir() else path.parent).resolve()
    return web if web == root or root in web.parents else None
