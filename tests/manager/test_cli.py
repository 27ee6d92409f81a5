"""`partyflow nodes ...` and `partyflow audit ...` end to end, as users run them: `python -m partyflow`."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

from tests.manager.helpers import GitRemote, cli, cli_json, write_pack

from partyflow.config import Home
from partyflow.manager.errors import ManagerError
from partyflow.manager.packs import PackManager


def test_pack_commands_end_to_end(home: Home, sources: Path, git_remote: GitRemote) -> None:
    src = write_pack(sources / "clipack", cls="CliNode")
    done = cli("nodes", "install", str(src), home=home)
    assert done.returncode == 0, done.stderr
    assert "installed clipack" in done.stdout and "CliNode" in done.stdout

    result = cli_json("nodes", "install", f"{git_remote.bare}@v1.0", "--name", "gitpack", home=home)
    assert result["record"]["ref_kind"] == "tag" and result["record"]["commit"] == git_remote.commits["1"]

    listed = cli_json("nodes", "list", "--installed", home=home)
    assert {(p["name"], p["enabled"]) for p in listed} == {("clipack", True), ("gitpack", True)}
    classes = cli_json("nodes", "list", home=home)  # no pack flag: node classes, as before
    assert "CliNode" in {c["class_type"] for c in classes}

    info = cli_json("nodes", "info", "gitpack", home=home)
    assert info["record"]["source"]["kind"] == "git" and info["record"]["version"] == "v1.0"
    node = cli_json("nodes", "info", "CliNode", home=home)  # not a pack: falls back to the class
    assert node["category"] == "test"

    assert cli("nodes", "disable", "clipack", "--yes", home=home).returncode == 0  # --yes is uniform, not refused
    assert cli_json("nodes", "list", "--disabled", home=home)[0]["name"] == "clipack"
    assert cli("nodes", "enable", "clipack", "-y", home=home).returncode == 0
    PackManager(home).disable("clipack")
    PackManager(home).enable("clipack")

    updated = cli_json("nodes", "update", "gitpack@main", home=home)
    assert updated["changed"] and updated["record"]["commit"] == git_remote.commits["2"]
    everything = cli_json("nodes", "update", "--all", home=home)
    assert [u["changed"] for u in everything] == [False, False]

    assert cli("nodes", "uninstall", "clipack", "--yes", home=home).returncode == 0
    assert [p.name for p in PackManager(home).installed()] == ["gitpack"]


def test_cli_errors_and_exit_codes(home: Home, sources: Path) -> None:
    PackManager(home).install(str(write_pack(sources / "realpack")))

    unknown = cli("nodes", "uninstall", "realpak", home=home)
    assert unknown.returncode == 2 and "did you mean: realpack?" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    as_json = cli("nodes", "disable", "realpak", "--json", home=home)
    assert as_json.returncode == 2 and json.loads(as_json.stdout)["suggestions"] == ["realpack"]

    broken = sources / "broken"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ValueError('nope')\n")
    failed = cli("nodes", "install", str(broken), home=home)
    assert failed.returncode == 1 and "nope" in failed.stderr and "Traceback" not in failed.stderr

    missing = cli("nodes", "install", str(sources / "nothing-here/"), home=home)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert cli("nodes", "update", home=home).returncode == 2


def test_audit_commands(home: Home, sources: Path) -> None:
    manager = PackManager(home)
    manager.install(str(write_pack(sources / "audited")))
    manager.disable("audited")
    try:
        manager.enable("missing")
    except ManagerError:
        pass

    shown = cli_json("audit", "show", home=home)
    assert [(e["action"], e["result"]) for e in shown] == [("install", "ok"), ("disable", "ok"),
                                                           ("enable", "refused")]
    verified = cli("audit", "verify", home=home)
    assert verified.returncode == 0 and "intact" in verified.stdout

    exported = cli("audit", "export", "--format", "csv", home=home)
    assert exported.returncode == 0
    assert [r["action"] for r in csv.DictReader(io.StringIO(exported.stdout))] == ["install", "disable", "enable"]
    out = home.root / "audit.json"
    assert cli("audit", "export", "--format", "json", "--output", str(out), home=home).returncode == 0
    assert len(json.loads(out.read_text())) == 3
    assert cli("audit", "export", "--format", "xml", home=home).returncode == 2
    unwritable = cli("audit", "export", "--output", str(home.root / "no" / "such" / "dir.json"), home=home)
    assert unwritable.returncode == 2 and "cannot write" in unwritable.stderr and "Traceback" not in unwritable.stderr

    with sqlite3.connect(home.state_db) as db:
        db.execute("UPDATE audit_log SET actor = 'someone-else' WHERE id = 2")
    tampered = cli("audit", "verify", home=home)
    assert tampered.returncode == 1 and "at record 2" in tampered.stderr
    assert cli_json_any("audit", "verify", home=home)["first_bad_id"] == 2


def cli_json_any(*args: str, home: Home) -> dict:
    return json.loads(cli(*args, "--json", home=home).stdout)
