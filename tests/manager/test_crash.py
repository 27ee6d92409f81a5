"""SIGKILL a real manager process at named steps; after recovery the pack is wholly old or wholly new.

The child runs with PARTYFLOW_MANAGER_PAUSE_AT=<step>: when it reaches that step it prints a marker and blocks,
we read the marker and kill it there, so no timing is involved.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.manager.helpers import assert_settled, audit_entries, cli, pack_version, write_pack

from partyflow.config import Home
from partyflow.manager.packs import PackManager
from partyflow.manager.provenance import tree_hash
from partyflow.manager.staging import PAUSE_MARKER

Starter = Callable[[str, str], subprocess.Popen[str]]


def kill_at(start: Starter, code: str, step: str) -> None:
    process = start(code, step)
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith(PAUSE_MARKER):
            assert line.split()[1] == step
            break
    else:
        process.wait()
        raise AssertionError(f"the process ended (exit {process.returncode}) without reaching step {step!r}")
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


def consistent(home: Home, name: str) -> str | None:
    """The installed version, after checking folder and record agree; None when the pack is absent."""
    path = home.custom_nodes / name
    records = json.loads((home.root / "manager" / "packs.json").read_text()).get("packs", {}) \
        if (home.root / "manager" / "packs.json").exists() else {}
    if not path.exists():
        assert name not in records, "a record without its pack"
        return None
    assert records[name]["content_hash"] == tree_hash(path), "the record does not describe the files"
    return pack_version(path)


def api(home: Home, call: str) -> str:
    return f"from partyflow.manager.packs import PackManager\nPackManager({str(home.root)!r}).{call}\n"


@pytest.mark.parametrize("step, expected", [
    ("fetched", None), ("dependencies", None), ("verified", None),
    ("committed", "1"), ("moved-0", "1"), ("recorded", "1"),
])
def test_killed_install(paused: Starter, home: Home, sources: Path, step: str, expected: str | None) -> None:
    src = write_pack(sources / "crashy", "1")
    kill_at(paused, api(home, f"install({str(src)!r})"), step)
    if step == "moved-0":
        assert (home.custom_nodes / "crashy").exists() and not (home.root / "manager" / "packs.json").exists()
    recovered = PackManager(home).recover()
    assert [(r.action, r.outcome) for r in recovered] == [
        ("install", "rolled back" if expected is None else "completed")]
    assert consistent(home, "crashy") == expected
    assert_settled(home)
    assert [(e.action, e.result) for e in audit_entries(home)] == [("recover", "recovered")]
    if expected is None:  # a rolled-back install can simply be done again
        PackManager(home).install(str(src))
        assert consistent(home, "crashy") == "1"


@pytest.mark.parametrize("step, expected", [
    ("fetched", "1"), ("verified", "1"), ("committed", "2"), ("moved-0", "2"), ("moved-1", "2"), ("recorded", "2"),
])
def test_killed_update(paused: Starter, home: Home, sources: Path, step: str, expected: str) -> None:
    src = write_pack(sources / "crashy", "1")
    PackManager(home).install(str(src))
    write_pack(src, "2")
    kill_at(paused, api(home, "update('crashy')"), step)
    if step == "moved-0":  # the old pack is out of the way, the new one not yet in: the worst moment
        assert not (home.custom_nodes / "crashy").exists()
    done = cli("nodes", "list", "--installed", "--json", home=home)  # any manager command recovers first
    assert done.returncode == 0, done.stderr
    (listed,) = json.loads(done.stdout)
    assert listed["name"] == "crashy" and listed["enabled"]
    assert consistent(home, "crashy") == expected
    assert_settled(home)
    assert audit_entries(home)[-1].action == "recover"


@pytest.mark.parametrize("step", ["committed", "moved-0"])
def test_killed_uninstall_and_disable(paused: Starter, home: Home, sources: Path, step: str) -> None:
    PackManager(home).install(str(write_pack(sources / "gone", "1")))
    PackManager(home).install(str(write_pack(sources / "sleepy", "1")))
    kill_at(paused, api(home, "uninstall('gone')"), step)
    PackManager(home).recover()
    kill_at(paused, api(home, "disable('sleepy')"), step)
    PackManager(home).recover()
    assert consistent(home, "gone") is None
    assert not (home.custom_nodes / "sleepy").exists() and (home.disabled_nodes / "sleepy").is_dir()
    assert_settled(home)


def test_killed_during_recovery(paused: Starter, home: Home, sources: Path) -> None:
    """Recovery itself is interrupted (the next operation pauses while finishing the first); a later run ends it."""
    src = write_pack(sources / "twice", "1")
    PackManager(home).install(str(src))
    write_pack(src, "2")
    kill_at(paused, api(home, "update('twice')"), "moved-0")
    kill_at(paused, api(home, "recover()"), "moved-1")
    PackManager(home).recover()
    assert consistent(home, "twice") == "2"
    assert_settled(home)
