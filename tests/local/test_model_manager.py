"""The model manager with two real tiny models and a budget that holds only one of them."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

import pytest

from partyflow.config import Home
from partyflow.llm.config import ProvidersConfig
from partyflow.llm.models import ModelManager, estimate_bytes, parameter_count
from partyflow.llm.providers import create
from partyflow.llm.providers.transformers_local import LocalModel, load_local_model
from partyflow.llm.types import ChatRequest, UserMessage

HELLO = ChatRequest(messages=(UserMessage(content="Hello"),), max_tokens=3, temperature=0)


class CountingLoader:
    """`load_local_model`, counting the loads per folder name."""

    def __init__(self) -> None:
        self.loads: dict[str, int] = {}

    def __call__(self, path: Path) -> LocalModel:
        self.loads[path.name] = self.loads.get(path.name, 0) + 1
        return load_local_model(path, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def folders(tiny_home: Home) -> tuple[Path, Path]:
    return tiny_home.models / "llm" / "tiny", tiny_home.models / "llm" / "tiny-wide"


@pytest.fixture(scope="module")
def sizes(folders: tuple[Path, Path]) -> tuple[int, int]:
    return tuple(load_local_model(folder, device="cpu").nbytes for folder in folders)  # type: ignore[return-value]


def ticking_clock() -> Any:
    ticks = itertools.count(1000)
    return lambda: float(next(ticks))


def test_the_estimate_from_safetensors_headers_matches_the_loaded_size(folders: tuple[Path, Path],
                                                                       sizes: tuple[int, int]) -> None:
    for folder, size in zip(folders, sizes, strict=True):
        estimate = estimate_bytes(folder, "float32")
        assert estimate is not None and abs(size - estimate) <= 0.02 * size  # buffers (rotary) are not saved
        assert estimate_bytes(folder, "bfloat16") == parameter_count(folder) * 2  # type: ignore[operator]
    assert estimate_bytes(folders[0].parent, "float32") is None  # no safetensors files


def test_a_budget_for_one_keeps_the_most_recent_and_reloads_on_demand(folders: tuple[Path, Path],
                                                                       sizes: tuple[int, int]) -> None:
    small, wide = folders
    manager = ModelManager(budget_bytes=max(sizes) + 1000, clock=ticking_clock())
    loader = CountingLoader()
    first = manager.get("tiny", small, loader)
    assert manager.get("tiny", small, loader) is first and loader.loads == {"tiny": 1}
    manager.get("wide", wide, loader, estimate_bytes=estimate_bytes(wide, "float32"))
    assert [info.name for info in manager.loaded()] == ["wide"] and manager.used_bytes == sizes[1]
    manager.get("tiny", small, loader)
    assert loader.loads == {"tiny": 2, "tiny-wide": 1}
    [info] = manager.loaded()
    assert (info.name, info.path, info.bytes) == ("tiny", small, sizes[0])


def test_a_budget_for_both_reports_them_most_recent_first(folders: tuple[Path, Path],
                                                          sizes: tuple[int, int]) -> None:
    manager = ModelManager(budget_bytes=sum(sizes) + 1000, clock=ticking_clock())
    loader = CountingLoader()
    manager.get("tiny", folders[0], loader)
    manager.get("wide", folders[1], loader)
    manager.get("tiny", folders[0], loader)
    report = manager.loaded()
    assert [(i.name, i.bytes) for i in report] == [("tiny", sizes[0]), ("wide", sizes[1])]
    assert report[0].last_used > report[1].last_used and loader.loads == {"tiny": 1, "tiny-wide": 1}
    assert manager.unload("wide") and not manager.unload("wide")
    assert [i.name for i in manager.loaded()] == ["tiny"]


def test_a_model_larger_than_the_budget_still_loads_alone(folders: tuple[Path, Path]) -> None:
    manager = ModelManager(budget_bytes=1000)
    loader = CountingLoader()
    manager.get("tiny", folders[0], loader)
    manager.get("wide", folders[1], loader)
    assert [i.name for i in manager.loaded()] == ["wide"]


def test_concurrent_first_uses_load_once(folders: tuple[Path, Path]) -> None:
    manager = ModelManager(budget_bytes=1 << 30)
    loader = CountingLoader()
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(manager.get("tiny", folders[0], loader)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert loader.loads == {"tiny": 1} and len(got) == 4 and all(model is got[0] for model in got)


def test_providers_sharing_a_manager_take_turns_within_the_budget(tiny_home: Home, sizes: tuple[int, int]) -> None:
    config = ProvidersConfig.from_mapping({"providers": {
        "small": {"type": "transformers", "path": "tiny"},
        "wide": {"type": "transformers", "path": "tiny-wide"}}}, environ={})
    manager = ModelManager(budget_bytes=max(sizes) + 1000)
    small, wide = (create(name, config, home=tiny_home, manager=manager) for name in ("small", "wide"))
    for provider, expected in ((small, "tiny"), (wide, "tiny-wide"), (small, "tiny")):
        assert provider.chat(HELLO).usage is not None
        assert [info.name for info in manager.loaded()] == [expected]


def test_a_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ModelManager(budget_bytes=0)
