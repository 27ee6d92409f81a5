"""doctor/fix and the CLI commands (catalog, snapshot) end to end through Typer, against real homes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from partyflow.cli.main import app
from partyflow.config import Home
from partyflow.manager import doctor
from partyflow.manager.dependencies import installed_packages

from .conftest import DATA, write_config
from .helpers import make_pack, make_venv

BROKEN = "raise RuntimeError('boom at import')\n"
NEEDS_ALPHA = "import alpha\nNODE_CLASS_MAPPINGS = {}\n"


def run(home: Home, *args: str) -> tuple[int, object]:
    result = CliRunner().invoke(app, ["--home", str(home.root), *args])
    try:
        return result.exit_code, json.loads(result.stdout)
    except json.JSONDecodeError:
        return result.exit_code, result.output


@pytest.fixture
def target(home: Home, wheelhouse: Path, tmp_path: Path) -> str:
    """Packs' dependencies go to a fresh venv (`[manager] python`), never to the test's own environment."""
    venv = make_venv(tmp_path / "venv")
    write_config(home, f'[manager]\nno_index = true\nfind_links = ["{wheelhouse}"]\npython = "{venv}"\n'
                       f'channels = [{{name = "cm", url = "{(DATA / "cm43").as_uri()}"}}]\n')
    return venv


def test_doctor_reports_failures_and_fix_installs(home: Home, target: str) -> None:
    make_pack(home.custom_nodes, "good")
    make_pack(home.custom_nodes, "broken", body=BROKEN)
    make_pack(home.custom_nodes, "needy", ("alpha==1.0",), body=NEEDS_ALPHA)
    health = {h.name: h for h in doctor.diagnose(home)}
    assert health["good"].ok and health["good"].node_types == ("goodHello",) and health["good"].seconds is not None
    assert not health["broken"].ok and "boom at import" in (health["broken"].error or "")
    needy = health["needy"]
    assert not needy.ok and needy.missing_module == "alpha" and needy.missing_requirements == ("alpha==1.0",)
    assert "partyflow nodes fix needy" in needy.hints[0]

    code, out = run(home, "nodes", "doctor", "--json")
    assert code == 1 and {r["name"]: r["ok"] for r in out} == {"good": True, "broken": False, "needy": False}
    code, out = run(home, "nodes", "fix", "needy", "--yes", "--json")
    assert code == 0 and out["installed"] == {"alpha": "1.0"}
    assert installed_packages(target)["alpha"] == "1.0"
    assert doctor.diagnose(home)[-1].missing_requirements == ()  # "needy" sorts last; nothing declared is missing
    code, out = run(home, "nodes", "fix", "nedy", "--json")
    assert code == 2 and "needy" in out["suggestions"]


def test_catalog_commands(home: Home, target: str) -> None:
    code, out = run(home, "nodes", "refresh", "--json")
    assert code == 0 and out == {"cm": {"ok": True, "error": None}}
    code, out = run(home, "nodes", "available", "impact", "--json")
    assert code == 0 and "comfyui-impact-pack" in [e["id"] for e in out] and len(out) < 5
    code, out = run(home, "nodes", "which", "SAMLoader", "Unknown", "--json")
    assert out == {"SAMLoader": "comfyui-impact-pack", "Unknown": None}
    code, out = run(home, "nodes", "install", "comfyui-impact-pak", "--json")
    assert code == 2 and "comfyui-impact-pack" in out["suggestions"]
    code, out = run(home, "nodes", "outdated", "--json")
    assert code == 0 and out == []


def test_snapshot_commands(home: Home, target: str, tmp_path: Path) -> None:
    make_pack(tmp_path / "src", "solo", ("delta",))
    code, out = run(home, "nodes", "install", str(tmp_path / "src" / "solo"), "--json", "--yes")
    assert code == 0, out
    code, out = run(home, "snapshot", "save", "s1", "--json")
    assert code == 0 and out["name"] == "s1"
    code, out = run(home, "snapshot", "list", "--json")
    assert [(r["name"], r["packs"]) for r in out] == [("s1", 1)] and out[0]["python"] >= 1
    code, out = run(home, "snapshot", "show", "s1", "--json")
    assert out["packs"][0]["name"] == "solo" and out["python"]["delta"] == "1.5"
    run(home, "nodes", "disable", "solo", "--json")
    code, out = run(home, "snapshot", "diff", "s1", "--json")
    assert [p["change"] for p in out["packs"]] == ["disabled"]
    code, out = run(home, "snapshot", "restore", "s1", "--dry-run", "--json")
    assert out["dry_run"] is True and (home.disabled_nodes / "solo").exists()
    # --no-python leaves packages out of both sides, rather than showing every saved package as added/removed
    for command, change in ((("diff", "s1"), "disabled"), (("restore", "s1", "--dry-run"), "enabled")):
        code, out = run(home, "snapshot", *command, "--no-python", "--json")
        assert code == 0 and out["python"] == {"added": {}, "removed": {}, "changed": {}}, command
        assert [p["change"] for p in out["packs"]] == [change]
    code, out = run(home, "snapshot", "restore", "s1", "--yes", "--json")
    assert code == 0 and out["ok"] and out["actions"] == ["enable solo"]
    assert (home.custom_nodes / "solo").is_dir()
    code, out = run(home, "snapshot", "show", "nope", "--json")
    assert code == 2 and "no snapshot" in out["error"]
