"""A tiny GGUF, converted once per test session into a home's `models/gguf/`, never downloaded."""

from __future__ import annotations

import os

import pytest
from tests.support.tiny_gguf import TinyGGUF, build_tiny_gguf

from partyflow.config import Home

pytest.importorskip("llama_cpp", reason="the gguf extra (llama-cpp-python) is not installed")
pytest.importorskip("gguf", reason="the gguf extra (gguf) is not installed")


@pytest.fixture(scope="session")
def gguf_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A home whose `models/gguf/tiny.gguf` is the tiny Llama of `tests.support.tiny_model`, converted."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # a stray hub lookup must fail loudly, not download
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    home = Home(tmp_path_factory.mktemp("gguf-home")).ensure()
    build_tiny_gguf(home.models / "gguf" / "tiny.gguf", source=tmp_path_factory.mktemp("tiny-hf") / "tiny")
    return home


@pytest.fixture(scope="session")
def tiny_gguf(gguf_home: Home) -> TinyGGUF:
    return TinyGGUF(gguf=gguf_home.models / "gguf" / "tiny.gguf",
                    source=next(gguf_home.root.parent.glob("tiny-hf*")) / "tiny")
