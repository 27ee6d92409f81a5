"""Fixtures of the agent tests: the scripted OpenAI-compatible loopback server, a provider and an engine on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.openai_server import OpenAIServer, _QuietServer

from partyflow import Engine
from partyflow.llm import ChatModel, ProviderConfig
from partyflow.llm.providers import create


@pytest.fixture(scope="session")
def running_server() -> Iterator[OpenAIServer]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_QuietServer, "request_queue_size", 128)
        server = OpenAIServer()
    with server:
        yield server


@pytest.fixture
def server(running_server: OpenAIServer) -> Iterator[OpenAIServer]:
    running_server.reset()
    yield running_server
    running_server.reset()
    assert not running_server.failures


@pytest.fixture
def model(server: OpenAIServer) -> Iterator[ChatModel]:
    config = ProviderConfig.model_validate({"name": "default", "type": "openai_compat", "base_url": server.url,
                                            "model": "tiny-chat", "max_retries": 0, "timeout": 20})
    provider = create("default", config)
    yield provider
    provider.close()


@pytest.fixture
def home(tmp_path: Path, server: OpenAIServer) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(f"""
[providers.default]
type = "openai_compat"
base_url = "{server.url}"
model = "tiny-chat"
max_retries = 0
timeout = 20
""", encoding="utf-8")
    return home


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    engine = Engine(home=home, load_custom_nodes=False)
    yield engine
    engine.close()
