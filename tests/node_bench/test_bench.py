"""`partyflow nodes bench` in real subprocesses: a fast and a slow node tell apart, a broken pack and a failing
node fail the run (exit 1), bad input is refused (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.offline.conftest import cli

from partyflow.config import Home
from partyflow.manager.bench import bench_pack
from partyflow.manager.errors import ManagerError

from .conftest import BOOM, BROKEN, chain_workflow, write_json, write_pack


def bench(*args: str, home: Home, code: int) -> dict:
    done = cli("nodes", "bench", *args, "--json", home=home)
    assert done.returncode == code, done.stderr + done.stdout
    return json.loads(done.stdout)


def by_class(report: dict) -> dict[str, dict]:
    return {n["class_type"]: n for n in report["nodes"]}


def test_fast_and_slow_nodes_from_generated_inputs(fastslow: Path, tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    report = bench(str(fastslow), "--repeat", "3", home=home, code=0)
    assert report["schema"] == "partyflow-bench/1" and report["ok"] and report["sandboxed"]
    assert set(report) == {"schema", "pack", "path", "ok", "repeat", "python", "sandboxed", "source", "workflow",
                           "workflow_error", "import", "nodes", "counts"}  # the schema CI scripts rely on
    assert set(report["nodes"][0]) == {"class_type", "status", "runs", "seconds", "reason"}
    assert report["source"] == "generated" and report["repeat"] == 3
    imported = report["import"]
    assert imported["ok"] and imported["seconds"] > 0 and isinstance(imported["rss_bytes"], int)
    assert imported["peak_rss_bytes"] > 0 and sorted(imported["node_types"]) == ["Fast", "NeedsImage", "Slow"]
    nodes = by_class(report)
    fast, slow = nodes["Fast"]["seconds"], nodes["Slow"]["seconds"]
    assert nodes["Fast"]["runs"] == nodes["Slow"]["runs"] == 3
    assert slow["min"] >= 0.06  # the default of 60 ms, slept for real
    assert fast["median"] * 5 < slow["median"]
    assert nodes["NeedsImage"]["status"] == "skipped" and nodes["NeedsImage"]["runs"] == 0
    assert "'image' of type IMAGE" in nodes["NeedsImage"]["reason"]
    assert report["counts"] == {"ok": 2, "skipped": 1, "error": 0}


def test_sample_workflow_from_the_pack_and_from_a_file(fastslow: Path, tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    given = write_json(tmp_path / "wf.json", chain_workflow(ms=30))
    report = bench(str(fastslow), "--workflow", str(given), "--repeat", "2", home=home, code=0)
    assert report["source"] == "workflow" and report["workflow"] == str(given)
    nodes = by_class(report)
    assert nodes["Slow"]["runs"] == 2 and 0.03 <= nodes["Slow"]["seconds"]["min"] < 0.06  # Fast said 30 ms
    assert nodes["NeedsImage"]["status"] == "skipped" and "not used" in nodes["NeedsImage"]["reason"]
    # the pack's own example_workflows/ is used when no --workflow is given
    write_json(fastslow / "example_workflows" / "demo.json", chain_workflow(ms=10))
    own = bench_pack(home, str(fastslow), repeat=1).to_dict()
    assert own["source"] == "workflow" and own["workflow"].endswith("example_workflows/demo.json")
    assert by_class(own)["Slow"]["seconds"]["min"] >= 0.01


def test_broken_pack_and_failing_node_fail_the_run(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    broken = write_pack(home.custom_nodes, "brokenpack", BROKEN)  # an installed pack, benched by name
    report = bench("brokenpack", home=home, code=1)
    assert report["ok"] is False and report["import"]["ok"] is False and report["path"] == str(broken)
    assert "this pack is broken at import" in report["import"]["error"] and report["nodes"] == []
    boom = write_pack(tmp_path / "src", "boompack", BOOM)
    failed = bench_pack(home, str(boom), repeat=2)
    assert not failed.ok
    node = by_class(failed.to_dict())["Boom"]
    assert node["status"] == "error" and "boom at run time" in node["reason"]


def test_bad_input_is_refused(fastslow: Path, tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    assert "no installed pack named 'nosuch'" in bench("nosuch", home=home, code=2)["error"]
    for options, message in (({"repeat": 0}, "--repeat"), ({"workflow": tmp_path / "none.json"},
                                                            "no such workflow file")):
        with pytest.raises(ManagerError, match=message) as caught:
            bench_pack(home, str(fastslow), **options)  # type: ignore[arg-type]
        assert caught.value.user_error
    bad = write_json(tmp_path / "bad.json", {"1": {"class_type": "NoSuchNode", "inputs": {}}})
    refused = bench_pack(home, str(fastslow), workflow=bad, repeat=1)
    assert refused.ok is False and refused.workflow_error and "NoSuchNode" in refused.workflow_error


HANG = """
import time

class Quick:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "bench"
    def run(self):
        return (1,)

class Hang:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "bench"
    def run(self):
        time.sleep(600)
        return (1,)

NODE_CLASS_MAPPINGS = {"Quick": Quick, "Hang": Hang}
"""


def test_a_node_that_hangs_is_blamed_and_the_rest_reported(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    pack = write_pack(tmp_path / "src", "hangpack", HANG)
    report = bench_pack(home, str(pack), repeat=1, timeout=2).to_dict()
    assert report["ok"] is False and report["import"]["ok"]
    nodes = by_class(report)
    assert nodes["Quick"]["status"] == "ok" and nodes["Quick"]["runs"] == 1
    assert nodes["Hang"]["status"] == "error" and "did not finish within 2 seconds" in nodes["Hang"]["reason"]
