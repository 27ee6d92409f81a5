"""Fixtures for the manager routes: a real catalog channel on a loopback HTTP server (our catalog format, real zip
archives), a home that lists it, an engine on that home and a live server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.manager_catalog.helpers import Served, serve
from tests.server.live import LiveServer, make_home, start_server
from tests.server_manager.world import NODE_CLASS, ManagerWorld, catalog_document, pack_zip, write_config

from partyflow import Engine
from partyflow.server import ServerConfig


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The level comes from each test's config.toml only; uv's cache stays out of the user's."""
    for name in ("PARTYFLOW_SECURITY_LEVEL", "PARTYFLOW_MANAGER_SECURITY_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "uv-cache"))


@pytest.fixture
def channel() -> Iterator[Served]:
    archive = pack_zip("tidy", NODE_CLASS)
    routes: dict[str, Any] = {}
    with serve(routes) as served:
        routes["/custom-node-list.json"] = catalog_document(served.url, archive)
        routes["/extension-node-map.json"] = {"https://example.org/tidy": [[NODE_CLASS], {"title_aux": "Tidy"}]}
        routes["/tidy.zip"] = archive
        yield served


@pytest.fixture
def home(tmp_path: Path, channel: Served) -> Path:
    home = make_home(tmp_path)  # with the server tests' gatepack, a pack that imports
    write_config(home, channel.url, "normal")
    broken = home / "custom_nodes" / "brokenpack"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('brokenpack needs a module nobody has')\n")
    return home


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    engine = Engine(home=home, builtin_packs=("core",))
    yield engine
    engine.close()


@pytest.fixture
def world_factory(engine: Engine, home: Path, channel: Served) -> Iterator[Callable[..., ManagerWorld]]:
    started: list[LiveServer] = []

    def factory(**options: Any) -> ManagerWorld:
        live = start_server(engine, replace(ServerConfig(port=0, shutdown_grace_s=5.0), **options))
        started.append(live)
        return ManagerWorld(live, home, channel)

    yield factory
    for live in started:
        live.stop()


@pytest.fixture
def world(world_factory: Callable[..., ManagerWorld]) -> ManagerWorld:
    return world_factory()
