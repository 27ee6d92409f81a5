"""One private Ray cluster on 127.0.0.1 for the test session, started and stopped by a fixture (2 CPUs, a small
object store, no dashboard), with a home holding the test pack and tiny transformers and GGUF models; and the backend's two
prompt workers on it."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.support.tiny_gguf import build_tiny_gguf
from tests.support.tiny_model import TinyModelSpec, build_tiny_model

from partyflow import Engine
from partyflow.distributed import BackendSettings
from partyflow.distributed.ray_backend import RayBackend

PACKS = Path(__file__).parent / "packs"
T = TypeVar("T")

CONFIG = """
[engine]
backend = "ray"
ray_address = "local"
ray_workers = 2
ray_num_cpus = 2
ray_object_store_bytes = 80_000_000
ray_resources = { special = 1 }
"""


@dataclass
class RayRig:
    engine: Engine
    backend: RayBackend
    loop: asyncio.AbstractEventLoop

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="session")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayRig]:
    home = tmp_path_factory.mktemp("rayhome")
    shutil.copytree(PACKS / "raytest", home / "custom_nodes" / "raytest", ignore=shutil.ignore_patterns("__pycache__"))
    (home / "config.toml").write_text(CONFIG, encoding="utf-8")
    os.environ["HF_HUB_OFFLINE"] = "1"  # a stray hub lookup must fail loudly, not download
    build_tiny_model(home / "models" / "llm" / "tiny", TinyModelSpec(seed=0))  # for the model actors
    build_tiny_gguf(home / "models" / "gguf" / "tiny.gguf", source=tmp_path_factory.mktemp("tiny-hf") / "tiny")
    engine = Engine(home)
    backend = RayBackend(engine, BackendSettings.from_raw(engine.settings.raw))
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(backend.start())
        yield RayRig(engine, backend, loop)
    finally:
        loop.run_until_complete(backend.close())
        loop.close()
        engine.close()
