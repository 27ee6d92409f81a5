"""A tiny GGUF, converted once per test session into a home's `models/gguf/`, never downloaded."""

from __future__ import annotations

import os

import llama_cpp  # noqa: F401
import pytest
from tests.support.tiny_gguf import TinyGGUF, build_tiny_gguf  # noqa: E402 - needs the gguf package

import gguf  # noqa: F401  the gguf extra is part of the test install: these tests never skip
from partyflow.config import Home  # noqa: E402


@pytest.fixture(scope="session")
def gguf_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return Home(tmp_path_factory.mktemp("gguf-home")).ensure()


@pytest.fixture(scope="session")
def tiny_gguf(gguf_home: Home, tmp_path_factory: pytest.TempPathFactory) -> TinyGGUF:
    """`models/gguf/tiny.gguf`: the tiny Llama of `tests.support.tiny_model`, converted (its source kept aside)."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # a stray hub lookup must fail loudly, not download
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    return build_tiny_gguf(gguf_home.models / "gguf" / "tiny.gguf",
                           source=tmp_path_factory.mktemp("tiny-hf") / "tiny")
