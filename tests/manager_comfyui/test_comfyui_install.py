"""partyflow managing a real ComfyUI 0.3.75 install (issue 14, item 1), as users run it: `python -m partyflow`.

One module-wide install: a pack from a git repository is installed into the ComfyUI with partyflow (its dependency
from a local wheelhouse into ComfyUI's venv), ComfyUI is started and serves its node; the pack is disabled the way
ComfyUI-Manager does it and `nodes doctor` (ComfyUI started again, in the sandbox) no longer sees its node and
reports a hand-placed broken pack; snapshots are written in ComfyUI-Manager's format and one of its snapshot files
is restored. Tests run in file order and build on each other's state; ComfyUI starts twice.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.manager.helpers import git
from tests.manager_catalog.helpers import make_wheel
from tests.manager_comfyui.conftest import ComfyInstall, serving
from typer.testing import CliRunner

from partyflow.cli.main import app

PACK = '''import folder_paths  # ComfyUI's own module: only importable inside ComfyUI
import pfcomfydep


class PfComfyHello:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": pfcomfydep.VERSION})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "partyflow-test"

    def run(self, text):
        return (text,)


NODE_CLASS_MAPPINGS = {"PfComfyHello": PfComfyHello}
'''


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def run_cli(home: Path, *args: str, subprocess_: bool = False) -> Outcome:
    """`partyflow --home HOME ARGS`: in this process by default (the suite makes many calls; each new interpreter
    would import partyflow again), or as `python -m partyflow` in a child process."""
    if subprocess_:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARTYFLOW_")}
        done = subprocess.run([sys.executable, "-m", "partyflow", "--home", str(home), *args], capture_output=True,
                              text=True, env=env, timeout=600, check=False)
        return Outcome(done.returncode, done.stdout, done.stderr)
    result = CliRunner().invoke(app, ["--home", str(home), *args], catch_exceptions=False,
                                env={k: None for k in os.environ if k.startswith("PARTYFLOW_")})
    return Outcome(result.exit_code, result.stdout, result.stderr)


def run_json(home: Path, *args: str, code: int = 0) -> Any:
    done = run_cli(home, *args, "--json")
    assert done.returncode == code, done.stdout + done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def setup(comfy: ComfyInstall, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A partyflow home whose config.toml names the ComfyUI as [target]; a git repo with the pack; wheels."""
    base = tmp_path_factory.mktemp("pf")
    wheels = base / "wheels"
    make_wheel(wheels, "pfcomfydep", "1.0")
    make_wheel(wheels, "pfcomfypin", "1.0")
    home = base / "home"
    home.mkdir()
    (home / "config.toml").write_text(f'[target]\ncomfyui = "{comfy.root}"\n\n'
                                      f'[manager]\nno_index = true\nfind_links = ["{wheels}"]\n')
    bare, work = base / "remotes" / "goodpack.git", base / "work" / "goodpack"
    bare.mkdir(parents=True)
    work.mkdir(parents=True)
    git("init", "-q", "--bare", cwd=bare)
    git("init", "-q", cwd=work)
    (work / "__init__.py").write_text(PACK)
    (work / "requirements.txt").write_text("pfcomfydep==1.0\n")
    git("add", ".", cwd=work)
    git("commit", "-qm", "goodpack 1", cwd=work)
    git("remote", "add", "origin", str(bare), cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    return {"home": home, "bare": bare, "commit": git("rev-parse", "HEAD", cwd=work)}


def test_bad_targets_are_refused_before_anything_changes(comfy: ComfyInstall, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    plain = tmp_path / "not-comfy"
    plain.mkdir()
    done = run_cli(home, "--comfyui", str(plain), "nodes", "list", "--json", subprocess_=True)  # as users run it
    assert done.returncode == 2 and "Traceback" not in done.stderr
    error = json.loads(done.stdout)
    assert error["ok"] is False and "not a ComfyUI install" in error["error"] and "main.py" in error["hint"]
    assert list(plain.iterdir()) == []

    before = sorted(p.name for p in (comfy.root / "custom_nodes").iterdir())
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    for python in (str(broken), str(tmp_path / "no-such-python")):
        error = run_json(home, "--comfyui", str(comfy.root), "--comfyui-python", python, "nodes", "install",
                         str(tmp_path), code=2)
        assert error["ok"] is False and python in error["error"] and "--comfyui-python" in error["hint"]
    done = run_cli(home, "--comfyui", str(comfy.root), "--comfyui-python", str(broken), "snapshot", "save")
    assert done.returncode == 2 and "does not run" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in (comfy.root / "custom_nodes").iterdir()) == before
    assert not (comfy.root / "user" / "__partyflow").exists()

    (home / "config.toml").write_text(f'[target]\ncomfyui = "{plain}"\n')  # the same check for [target]
    assert "not a ComfyUI install" in run_json(home, "nodes", "list", "--installed", code=2)["error"]


def test_install_puts_the_pack_in_custom_nodes_and_its_dependency_in_comfyuis_python(
        comfy: ComfyInstall, setup: dict[str, Any]) -> None:
    result = run_json(setup["home"], "nodes", "install", str(setup["bare"]))  # [target] in config.toml
    assert result["changed"] and result["node_types"] == ["PfComfyHello"]
    assert result["record"]["dependencies"]["python"] == str(comfy.python)
    assert result["record"]["dependencies"]["installed"] == {"pfcomfydep": "1.0"}
    assert (comfy.root / "custom_nodes" / "goodpack" / "__init__.py").is_file()
    assert (comfy.site / "pfcomfydep" / "__init__.py").is_file()          # ComfyUI's venv...
    assert importlib.util.find_spec("pfcomfydep") is None                 # ...not partyflow's
    assert comfy.run("import pfcomfydep; print(pfcomfydep.VERSION)").stdout.strip() == "1.0"
    state = comfy.root / "user" / "__partyflow"
    assert "goodpack" in json.loads((state / "manager" / "packs.json").read_text())["packs"]
    assert (state / "state.sqlite").is_file() and not (setup["home"] / "manager").exists()
    # a pack that does not import, put there by hand (as users do), for doctor to find
    (comfy.root / "custom_nodes" / "brokenpack").mkdir()
    (comfy.root / "custom_nodes" / "brokenpack" / "__init__.py").write_text("import pf_missing_for_doctor\n")


def test_comfyui_serves_the_installed_node(comfy: ComfyInstall, setup: dict[str, Any], tmp_path: Path) -> None:
    with serving(comfy, tmp_path) as running:
        info = running.object_info()
    assert info["PfComfyHello"]["python_module"] == "custom_nodes.goodpack"
    assert info["PfComfyHello"]["input"]["required"]["text"][1]["default"] == "1.0"
    assert "SaveImageWebsocket" in info  # the single-file pack ComfyUI ships


def test_disable_uses_comfyui_managers_folder_and_doctor_sees_the_node_gone(
        comfy: ComfyInstall, setup: dict[str, Any]) -> None:
    home = setup["home"]
    assert run_json(home, "nodes", "disable", "goodpack", "--yes")["changed"]
    assert (comfy.root / "custom_nodes" / ".disabled" / "goodpack@nightly" / "__init__.py").is_file()
    listed = {p["name"]: p for p in run_json(home, "nodes", "list")}
    assert listed["goodpack"]["enabled"] is False and listed["goodpack"]["managed"] is True
    assert listed["goodpack"]["comfyui_manager"]["kind"] == "nightly"
    assert listed["goodpack"]["comfyui_manager"]["aux_id"] == "goodpack"
    assert listed["brokenpack"]["managed"] is False

    report = {r["name"]: r for r in run_json(home, "nodes", "doctor", code=1)}  # ComfyUI, in the sandbox
    assert set(report) == {"brokenpack", "websocket_image_save"}  # the disabled pack is not loaded
    assert report["brokenpack"]["ok"] is False
    assert report["brokenpack"]["missing_module"] == "pf_missing_for_doctor"
    assert "ModuleNotFoundError" in report["brokenpack"]["error"]
    assert report["websocket_image_save"]["ok"] is True
    assert report["websocket_image_save"]["node_types"] == ["SaveImageWebsocket"]  # read from its /object_info

    # ComfyUI-Manager's names in .disabled/ are read back: enable and disable again round-trip
    assert run_json(home, "nodes", "enable", "goodpack")["changed"]
    assert (comfy.root / "custom_nodes" / "goodpack").is_dir()
    assert run_json(home, "nodes", "disable", "goodpack")["changed"]


def test_snapshots_are_comfyui_manager_files_and_its_snapshot_restores(
        comfy: ComfyInstall, setup: dict[str, Any]) -> None:
    home = setup["home"]
    folder = comfy.root / "user" / "default" / "ComfyUI-Manager" / "snapshots"
    saved = run_json(home, "snapshot", "save", "mine")
    assert Path(saved["path"]) == folder / "mine.json"
    document = json.loads((folder / "mine.json").read_text())
    assert document["git_custom_nodes"] == {str(setup["bare"]): {"hash": setup["commit"], "disabled": True}}
    assert {"filename": "websocket_image_save.py", "disabled": False} in document["file_custom_nodes"]
    assert "pfcomfydep==1.0" in document["pips"] and document["partyflow"]["format"] == "partyflow-snapshot/1"

    assert run_json(home, "nodes", "uninstall", "goodpack", "--yes")["changed"]
    (folder / "from-manager.json").write_text(json.dumps({  # as ComfyUI-Manager writes them, nothing of ours
        "comfyui": None,
        "git_custom_nodes": {str(setup["bare"]): {"hash": setup["commit"], "disabled": False}},
        "cnr_custom_nodes": {},
        "file_custom_nodes": [{"filename": "websocket_image_save.py", "disabled": False}],
        "pips": {"pfcomfypin==1.0": ""},
    }, indent=4))
    names = {s["name"]: s for s in run_json(home, "snapshot", "list")}
    assert names["from-manager"]["origin"] == "comfyui-manager" and names["mine"]["origin"] == "partyflow"

    result = run_json(home, "snapshot", "restore", "from-manager", "--yes")
    assert result["ok"], result["problems"]
    assert (comfy.root / "custom_nodes" / "goodpack" / "__init__.py").read_text() == PACK
    # packs the file does not list are disabled, as ComfyUI-Manager's restore does (not removed)
    assert (comfy.root / "custom_nodes" / ".disabled" / "brokenpack" / "__init__.py").is_file()
    assert (comfy.root / "custom_nodes" / "websocket_image_save.py").is_file()
    assert (comfy.site / "pfcomfypin" / "__init__.py").is_file() and importlib.util.find_spec("pfcomfypin") is None
    changes = run_json(home, "snapshot", "diff", "from-manager")["packs"]  # the file vs the install now
    assert [(c["name"], c["change"]) for c in changes] == [("brokenpack", "added")]  # kept, disabled


def test_a_registry_style_archive_is_seen_by_comfyui_manager_as_a_registry_pack(
        comfy: ComfyInstall, setup: dict[str, Any], tmp_path: Path) -> None:
    archive = tmp_path / "regpack.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("regpack/pyproject.toml", '[project]\nname = "regpack"\nversion = "1.2.0"\n'
                                                  '[tool.comfy]\nPublisherId = "tester"\n')
        zipped.writestr("regpack/__init__.py", "NODE_CLASS_MAPPINGS = {}\n")
    home = setup["home"]
    assert run_json(home, "nodes", "install", str(archive))["pack"] == "regpack"
    tracking = (comfy.root / "custom_nodes" / "regpack" / ".tracking").read_text().split()
    assert tracking == ["__init__.py", "pyproject.toml"]
    identity = {p["name"]: p for p in run_json(home, "nodes", "list")}["regpack"]["comfyui_manager"]
    assert (identity["kind"], identity["cnr_id"], identity["version"]) == ("cnr", "regpack", "1.2.0")
    assert run_json(home, "nodes", "disable", "regpack")["changed"]
    assert (comfy.root / "custom_nodes" / ".disabled" / "regpack@1_2_0" / ".tracking").is_file()
    assert run_json(home, "nodes", "enable", "regpack")["changed"]
    saved = json.loads(Path(run_json(home, "snapshot", "save", "with-registry")["path"]).read_text())
    assert saved["cnr_custom_nodes"] == {"regpack": "1.2.0"}


def test_report_and_backup_cover_the_comfyui_install(comfy: ComfyInstall, setup: dict[str, Any],
                                                     tmp_path: Path) -> None:
    home = setup["home"]
    done = run_cli(home, "report", "--no-scan")
    assert done.returncode == 0, done.stderr
    assert "goodpack" in {p["name"] for p in json.loads(done.stdout)["packs"]}
    archive = tmp_path / "backup.tar.gz"
    assert run_json(home, "backup", "create", "--output", str(archive))["files"] > 0
    with tarfile.open(archive) as opened:
        names = set(opened.getnames())
    assert {"home/custom_nodes/goodpack/__init__.py", "home/manager/packs.json", "home/state.sqlite",
            "home/snapshots/from-manager.json"} <= names
    assert not any(name.startswith("home/user/") or "/keys/" in name for name in names)
    refused = run_json(home, "backup", "restore", str(archive), "--yes", code=2)
    assert "ComfyUI" in refused["error"]
