"""Fixtures for the server tests: a home with the test pack, an engine on it, and live servers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.server.live import LiveServer, Tracebacks, make_home, start_server

from partyflow import Engine
from partyflow.server import ServerConfig
from partyflow.server.openai_api import openai_extension


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




@pytest.fixture
def full_server(engine: Engine) -> Iterator[LiveServer]:
    """The server as `partyflow serve` builds it: ComfyUI's routes, the manager's and the OpenAI-compatible ones."""
    live = start_server(engine, ServerConfig(port=0, shutdown_grace_s=1.0), extensions=(openai_extension(engine),))
    yield live
    live.stop()


@pytest.fixture
def tracebacks() -> Iterator[Tracebacks]:
    """Fails the test if anything logged a traceback or an error while it ran (a client mistake must not)."""
    handler = Tracebacks()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
    assert not handler.seen, [f"{r.name}: {r.getMessage()}" for r in handler.seen]
