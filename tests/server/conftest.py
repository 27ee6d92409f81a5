"""Fixtures for the server tests: a home with the test pack, an engine on it, and live servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.server.live import LiveServer, make_home, start_server

from partyflow import Engine
from partyflow.server import ServerConfig


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path)


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    engine = Engine(home=home, builtin_packs=("core",))
    yield engine
    engine.close()


@pytest.fixture
def config() -> ServerConfig:
    return ServerConfig(port=0, shutdown_grace_s=1.0)


@pytest.fixture
def server(engine: Engine, config: ServerConfig) -> Iterator[LiveServer]:
    live = start_server(engine, config)
    yield live
    live.stop()


@pytest.fixture
def server_factory(engine: Engine) -> Iterator[Callable[..., LiveServer]]:
    started: list[LiveServer] = []

    def factory(**options: Any) -> LiveServer:
        live = start_server(engine, replace(ServerConfig(port=0, shutdown_grace_s=1.0), **options))
        started.append(live)
        return live

    yield factory
    for live in started:
        live.stop()


