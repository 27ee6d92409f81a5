"""Third-party packs keep ComfyUI's one-node-at-a-time semantics unless a pack is marked parallel."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from partyflow.engine.engine import Engine

DATA = Path(__file__).resolve().parents[1] / "data" / "packs"
BRANCHES = 8


def _engine(tmp_path: Path, config: str = "") -> Engine:
    home = tmp_path / "home"
    shutil.copytree(DATA / "counter_file_pack", home / "custom_nodes" / "counter_file_pack")
    if config:
        (home / "config.toml").write_text(config)
    return Engine(home, builtin_packs=(), settings=None)


def _prompt() -> dict:
    prompt = {str(i): {"class_type": "BumpCounter", "inputs": {"tag": i}} for i in range(BRANCHES)}
    prompt["peak"] = {"class_type": "CounterPeak", "inputs": {"values": [str(0), 0]}}
    # every branch feeds the output node, so all eight run in one prompt, free to overlap
    for i in range(1, BRANCHES):
        prompt[f"p{i}"] = {"class_type": "CounterPeak", "inputs": {"values": [str(i), 0]}}
    return prompt


def _run(engine: Engine) -> tuple[int, int]:
    import sys

    pack = sys.modules[engine.registry.entry("BumpCounter").cls.__module__]
    pack.reset()
    result = engine.run(_prompt())
    assert result.ok, result.error
    counter = int((engine.home.output / "counter.txt").read_text())
    return counter, pack._state["peak"]  # read after every branch finished


def test_pack_sync_nodes_never_overlap_by_default(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    try:
        counter, peak = _run(engine)
    finally:
        engine.close()
    assert (counter, peak) == (BRANCHES, 1)


def test_a_pack_marked_parallel_runs_concurrently(tmp_path: Path) -> None:
    engine = _engine(tmp_path, "[packs.counter_file_pack]\nparallel = true\n")
    try:
        counter, peak = _run(engine)
    finally:
        engine.close()
    if engine.settings.max_workers < 2:
        pytest.fail("the engine needs at least two workers for this test")
    assert peak > 1  # calls overlapped (and so the unlocked counter may lose increments)
    assert counter <= BRANCHES
