from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.knowledge_server import KnowledgeServer

from partyflow.config import Home


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home").ensure()


@pytest.fixture
def kserver() -> Iterator[KnowledgeServer]:
    with KnowledgeServer() as server:
        yield server


def configure_llm(home: Home, url: str, name: str = "scripted") -> str:
    """A provider table pointing at the scripted server, as a user would write it."""
    home.config_file.write_text(f'[providers.{name}]\ntype = "openai_compat"\nbase_url = "{url}"\n'
                                f'model = "tiny-chat"\nembedding_model = "tiny-embed"\nmax_retries = 0\n',
                                encoding="utf-8")
    return name
