"""Fixtures of the agent tests: the scripted OpenAI-compatible loopback server, a provider and an engine on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.openai_server import OpenAIServer
from tests.support.providers import (
    engine_fixture,
    fresh_server_fixture,
    openai_table,
    running_server_fixture,
    write_config,
)

from partyflow.llm import ChatModel, ProviderConfig
from partyflow.llm.providers import create

running_server = running_server_fixture(scope="session")
server = fresh_server_fixture(check_failures=True)
engine = engine_fixture()


@pytest.fixture
def model(server: OpenAIServer) -> Iterator[ChatModel]:
    config = ProviderConfig.model_validate({"name": "default", "type": "openai_compat", "base_url": server.url,
                                            "model": "tiny-chat", "max_retries": 0, "timeout": 20})
    provider = create("default", config)
    yield provider
    provider.close()


@pytest.fixture
def home(tmp_path: Path, server: OpenAIServer) -> Path:
    return write_config(tmp_path / "home", openai_table("default", server.url))
