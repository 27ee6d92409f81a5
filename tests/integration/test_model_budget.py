"""The engine's model manager: local models loaded by workflows stay within `[models] memory_budget`.

Two tiny models and a budget that holds either but not both: running the second model's workflow unloads the
first, a later Chat node on the first loads it again, and the server's /system_stats lists what is loaded.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.server.live import start_server
from tests.support.tiny_model import TinyModelSpec, build_tiny_model

from partyflow import Engine
from partyflow.config import ConfigError
from partyflow.llm.models import BUDGET_ENV, default_budget, estimate_bytes, memory_budget, parse_size
from partyflow.server import ServerConfig


@pytest.fixture(scope="module")
def models_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A home with models/llm/tiny and the wider models/llm/tiny-wide, and a budget that fits one of them."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    home = tmp_path_factory.mktemp("budget") / "home"
    build_tiny_model(home / "models" / "llm" / "tiny", TinyModelSpec(seed=0))
    build_tiny_model(home / "models" / "llm" / "tiny-wide", TinyModelSpec(seed=1, hidden_size=64))
    small, wide = (estimate_bytes(home / "models" / "llm" / name, "float32") for name in ("tiny", "tiny-wide"))
    assert small and wide and small < wide
    budget = wide + small // 2  # either model fits; both do not
    (home / "config.toml").write_text(f"[models]\nmemory_budget = {budget}\n", encoding="utf-8")
    return home, budget


@pytest.fixture
def engine(models_home: tuple[Path, int]) -> Iterator[Engine]:
    # an LRU output cache keeps both loaders' outputs (handles), so a later run reuses a handle whose weights the
    # manager has unloaded meanwhile
    engine = Engine(home=models_home[0], load_custom_nodes=False, cache="lru:16")
    yield engine
    engine.close()


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}


def workflow(folder: str, user: str = "Hello") -> dict[str, Any]:
    return {"model": node("LocalModelLoader", folder=folder, device="cpu", dtype="float32"),
            "chat": node("LLMChat", model=["model", 0], system_prompt="Answer briefly.", user_prompt=user,
                         temperature=0.0, max_tokens=4, stream=False),
            "show": node("DisplayText", text=["chat", 0])}


def loaded_names(engine: Engine) -> list[str]:
    return [info.name for info in engine.loaded_models()]


def test_the_second_model_unloads_the_first_and_the_first_reloads_on_use(engine: Engine,
                                                                         models_home: tuple[Path, int]) -> None:
    home, budget = models_home
    assert engine.host.models is not None and engine.host.models.budget_bytes == budget
    assert engine.loaded_models() == []

    first = engine.run(workflow("tiny"))
    assert first.ok, first.error
    (info,) = engine.loaded_models()
    assert (info.name, info.path) == ("tiny", (home / "models" / "llm" / "tiny").resolve())
    assert 0 < info.bytes <= budget and info.last_used > 0

    second = engine.run(workflow("tiny-wide"))
    assert second.ok, second.error
    assert loaded_names(engine) == ["tiny-wide"]  # the least recently used model made room
    assert engine.host.models.used_bytes <= budget

    # The first loader's output is still cached; its Chat node loads the weights again through the manager.
    again = engine.run(workflow("tiny", user="Hello again"))
    assert again.ok, again.error
    assert "model" in again.cached and "chat" in again.executed
    assert loaded_names(engine) == ["tiny"]
    assert again.output("model") == first.output("model")


def test_system_stats_lists_the_loaded_model(engine: Engine, models_home: tuple[Path, int]) -> None:
    import aiohttp

    result = engine.run(workflow("tiny-wide"))
    assert result.ok, result.error
    live = start_server(engine, ServerConfig(port=0, shutdown_grace_s=1.0))
    try:
        async def fetch() -> dict[str, Any]:
            async with aiohttp.ClientSession() as session, session.get(f"{live.url}/system_stats") as response:
                assert response.status == 200
                return await response.json()

        stats = asyncio.run(fetch())
    finally:
        live.stop()
    (entry,) = stats["models"]
    assert entry["name"] == "tiny-wide" and entry["path"] == "llm/tiny-wide"
    assert entry["bytes"] == engine.loaded_models()[0].bytes and entry["last_used"] > 0
    assert stats["partyflow"] == {"models_memory_budget": models_home[1], "models_memory_used": entry["bytes"]}
    assert "system" in stats and "devices" in stats  # ComfyUI's fields are all still there


# --- the budget setting ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("8GB", 8 * 10**9), ("8GiB", 8 * 2**30), ("8g", 8 * 2**30), ("512 MB", 512 * 10**6), ("1.5G", 3 * 2**29),
    ("123456", 123456), (4096, 4096), ("2 kib", 2048), ("7b", 7),
])
def test_sizes_are_read_with_their_units(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


def test_the_budget_comes_from_the_environment_then_the_config_then_the_machine() -> None:
    config = {"models": {"memory_budget": "2GB"}}
    assert memory_budget(config, environ={}) == 2 * 10**9
    assert memory_budget(config, environ={BUDGET_ENV: "3GiB"}) == 3 * 2**30
    assert memory_budget({}, environ={}) == default_budget() > 0
    with pytest.raises(ConfigError, match=r"\[models\] memory_budget in config.toml: 'lots' is not a size"):
        memory_budget({"models": {"memory_budget": "lots"}}, environ={})
    with pytest.raises(ConfigError, match=f"{BUDGET_ENV} must be a positive size"):
        memory_budget({}, environ={BUDGET_ENV: "0"})


def test_an_engine_takes_its_budget_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BUDGET_ENV, "64MB")
    with Engine(home=tmp_path / "home", load_custom_nodes=False, builtin_packs=("core",)) as engine:
        assert engine.host.models is not None and engine.host.models.budget_bytes == 64 * 10**6
        assert engine.loaded_models() == []
