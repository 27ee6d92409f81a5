"""Isolated packs: two packs needing different versions of one library run side by side in one workflow."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.isolation.packs import ISOLATED, PLAIN, write

from partyflow.config import Home
from partyflow.engine.engine import Engine, PromptValidationError
from partyflow.engine.events import Progress
from partyflow.manager.packs import PackManager
from partyflow.nodes.isolation.environment import python_of, venv_dir

PROMPT = {
    "1": {"class_type": "VersionA", "inputs": {}},
    "2": {"class_type": "VersionB", "inputs": {"other": ["1", 0], "mode": "join", "count": 1}},
}


def with_inputs(**inputs: object) -> dict:
    prompt = json.loads(json.dumps(PROMPT))
    prompt["2"]["inputs"].update(inputs)
    return prompt


@pytest.fixture
def installed(tmp_path: Path, manager: PackManager, host_site: None) -> Home:
    """plain_pack (tinylib==1.0 in the host environment) and iso_pack (tinylib==2.0, isolated)."""
    manager.install(str(write(tmp_path / "src", "plain_pack", PLAIN, "tinylib==1.0")))
    result = manager.install(str(write(tmp_path / "src", "iso_pack", ISOLATED, "tinylib==2.0")), isolate=True)
    assert result.node_types == ("VersionB",)
    assert result.record is not None and result.record.isolated
    return manager.home


@pytest.fixture
def engine(installed: Home):
    with Engine(home=installed.root, builtin_packs=()) as engine:
        yield engine


def test_conflicting_versions_run_in_one_workflow(engine: Engine, installed: Home) -> None:
    assert all(r.ok for r in engine.pack_results), [r.error for r in engine.pack_results]
    assert python_of(venv_dir(installed.root, "iso_pack")).exists()
    result = engine.run(PROMPT)
    assert result.ok, result.error
    assert result.output("1") == "1.0"
    assert result.output("2", 0) == "1.0+2.0"
    assert result.output("2", 1) != os.getpid()  # it really ran in another process


def test_object_info_is_the_same_as_in_process(engine: Engine) -> None:
    info = engine.object_info("VersionB")["VersionB"]
    assert info["input"]["required"]["mode"] == [["join", "crash", "object", "raise", "wait"], {"default": "join"}]
    assert info["input"]["optional"]["spare"] == ["STRING", {"lazy": True}]
    assert info["output"] == ["STRING", "INT"] and info["output_name"] == ["text", "pid"]
    assert info["display_name"] == "Version B (isolated)"
    assert info["python_module"] == "custom_nodes.iso_pack"
    assert info["output_node"] is True and info["description"] == "isolated sample"
    assert info["category"] == "test/isolation"


def test_validate_inputs_and_is_changed_are_forwarded(engine: Engine) -> None:
    with pytest.raises(PromptValidationError, match="seven is not allowed"):
        engine.run(with_inputs(count=7))
    first = engine.run(PROMPT)
    again = engine.run(PROMPT)
    assert "2" in first.executed and "2" in again.cached  # IS_CHANGED gave the same value: cached
    changed = engine.run(with_inputs(count=3))
    assert "2" in changed.executed


def test_lazy_inputs_and_progress(engine: Engine) -> None:
    prompt = with_inputs(count=2)
    prompt["3"] = {"class_type": "VersionA", "inputs": {}}
    prompt["2"]["inputs"]["spare"] = ["3", 0]
    events: list[object] = []
    result = engine.run(prompt, sinks=[events.append])
    assert result.ok, result.error
    assert result.output("2", 0) == "1.0+2.0+1.0"  # check_lazy_status asked for `spare`
    assert any(isinstance(e, Progress) and e.node == "2" for e in events)


def test_errors_are_reported_and_the_worker_restarts(engine: Engine) -> None:
    raised = engine.run(with_inputs(mode="raise"))
    assert not raised.ok and raised.error is not None
    assert raised.error.exception_type == "ValueError" and "asked to raise" in raised.error.message

    unpicklable = engine.run(with_inputs(mode="object"))
    assert not unpicklable.ok and unpicklable.error is not None
    assert "output 0" in unpicklable.error.message and "cannot be sent" in unpicklable.error.message

    crashed = engine.run(with_inputs(mode="crash", count=4))
    assert not crashed.ok and crashed.error is not None
    assert crashed.error.exception_type == "IsolatedWorkerCrashed"
    assert "exited with code 9" in crashed.error.message and "restarted" in crashed.error.message

    recovered = engine.run(with_inputs(count=5))
    assert recovered.ok, recovered.error
    assert recovered.output("2", 0) == "1.0+2.0"


def test_an_input_that_cannot_cross_is_named(engine: Engine) -> None:
    cls = engine.registry.entry("VersionB").cls
    node = cls()
    with pytest.raises(TypeError, match="input 'other'.*cannot be sent"):
        node.run(other=lambda: None, mode="join", count=1)


def test_uninstall_removes_the_environment(installed: Home, manager: PackManager) -> None:
    manager.uninstall("iso_pack")
    assert not venv_dir(installed.root, "iso_pack").exists()


def test_missing_environment_is_a_clear_load_error(installed: Home) -> None:
    import shutil

    shutil.rmtree(venv_dir(installed.root, "iso_pack"))
    with Engine(home=installed.root, builtin_packs=()) as engine:
        failed = [r for r in engine.pack_results if not r.ok]
    assert [r.name for r in failed] == ["iso_pack"]
    assert "virtual environment" in (failed[0].error or "") and "--isolate" in (failed[0].error or "")


def test_each_environment_has_its_own_version_and_the_report_says_so(installed: Home) -> None:
    from partyflow.manager.dependencies import installed_packages
    from partyflow.manager.report import build_report

    iso_python = str(python_of(venv_dir(installed.root, "iso_pack")))
    assert installed_packages(iso_python)["tinylib"] == "2.0"
    report = {p.name: p for p in build_report(installed, scan=False).packs}
    assert report["iso_pack"].isolated and report["iso_pack"].environment == iso_python
    assert report["iso_pack"].dependencies[0]["installed"] == "2.0"
    assert report["plain_pack"].dependencies[0]["installed"] == "1.0"


def test_cli_install_isolate(tmp_path: Path, home: Home) -> None:
    from typer.testing import CliRunner

    from partyflow.cli.main import app

    source = write(tmp_path / "src", "cli_iso", ISOLATED, "tinylib==2.0")
    done = CliRunner().invoke(app, ["nodes", "install", str(source), "--isolate", "--json", "--home",
                                    str(home.root)])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["record"]["isolated"] is True and data["node_types"] == ["VersionB"]
    records = json.loads((home.root / "manager" / "packs.json").read_text())
    assert records["packs"]["cli_iso"]["isolated"] is True
    assert not list((home.root / "venvs").glob(".staging-*"))


def test_a_pack_that_fails_in_its_environment_is_not_installed(tmp_path: Path, manager: PackManager) -> None:
    from partyflow.manager.errors import ManagerError

    source = write(tmp_path / "src", "broken_iso", "import tinylib\nraise RuntimeError('boom at import')\n",
                   "tinylib==2.0")
    with pytest.raises(ManagerError, match="boom at import"):
        manager.install(str(source), isolate=True)
    assert not (manager.home.custom_nodes / "broken_iso").exists()
    assert not (manager.home.root / "venvs" / "broken_iso").exists()
    assert not list((manager.home.root / "venvs").glob(".staging-*"))


def test_interrupt_reaches_the_worker(engine: Engine) -> None:
    import threading

    started = threading.Event()
    outcome: list = []

    def sink(event: object) -> None:
        if isinstance(event, Progress) and event.node == "2":
            started.set()

    runner = threading.Thread(target=lambda: outcome.append(engine.run(with_inputs(mode="wait"), sinks=[sink])))
    runner.start()
    assert started.wait(30)
    assert engine.interrupt()
    runner.join(30)
    assert outcome and outcome[0].status == "interrupted"
    assert engine.run(PROMPT).ok  # the worker is still usable


def test_doctor_imports_an_isolated_pack_with_its_own_environment_in_the_sandbox(installed: Home) -> None:
    from partyflow.manager.doctor import diagnose

    health = {h.name: h for h in diagnose(installed)}
    assert health["iso_pack"].ok and health["iso_pack"].node_types == ("VersionB",), health["iso_pack"]
    assert health["iso_pack"].attempts == ()
