"""Tiny transformers models, built once per test session in a home's `models/llm/`, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.support.tiny_model import TinyModelSpec, build_tiny_model

from partyflow.config import Home


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A home holding two tiny models: `models/llm/tiny` and a wider `models/llm/tiny-wide`."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # a stray hub lookup must fail loudly, not download
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    home = Home(tmp_path_factory.mktemp("tiny-home")).ensure()
    build_tiny_model(home.models / "llm" / "tiny", TinyModelSpec(seed=0))
    build_tiny_model(home.models / "llm" / "tiny-wide", TinyModelSpec(seed=1, hidden_size=64))
    return home


@pytest.fixture(scope="session")
def tiny_path(tiny_home: Home) -> Path:
    return tiny_home.models / "llm" / "tiny"
