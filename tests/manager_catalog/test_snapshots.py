"""Snapshots: capture, save, diff and restore a real home through PackManager; ComfyUI-Manager's format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from partyflow.config import Home
from partyflow.manager import snapshots
from partyflow.manager.dependencies import installed_packages
from partyflow.manager.packs import PackManager
from partyflow.manager.sources import SourceSpec

from .conftest import write_config
from .helpers import make_pack, make_venv


@pytest.fixture
def setup(home: Home, wheelhouse: Path, tmp_path: Path):
    write_config(home, f'[manager]\nno_index = true\nfind_links = ["{wheelhouse}"]\n')
    src = tmp_path / "src"
    for name, reqs in (("one", ()), ("two", ()), ("three", ())):
        make_pack(src, name, reqs)
    pm = PackManager(home)
    for name in ("one", "two"):
        pm.install(str(src / name))
    pm.disable("two")
    return home, pm, src


def test_save_list_show_and_restore(setup, tmp_path: Path) -> None:
    home, pm, src = setup
    venv = make_venv(tmp_path / "venv")
    from partyflow.manager.dependencies import install_requirements

    install_requirements(["alpha==1.0"], home=home, python=venv)
    path = snapshots.save(home, "base", python=venv)
    assert snapshots.list_snapshots(home) == [path]
    snap = snapshots.load(snapshots.locate(home, "base"))
    assert set(snap.packs) == {"one", "two"} and snap.packs["two"].enabled is False
    assert snap.packs["one"].source == SourceSpec(kind="dir", location=str(src / "one"))
    assert snap.packs["one"].content_hash and snap.python["alpha"] == "1.0"

    # drift: a pack removed, one added, one enabled, one edited, a Python package changed
    pm.uninstall("one")
    pm.install(str(src / "three"))
    pm.enable("two")
    (home.custom_nodes / "two" / "extra.py").write_text("X = 1\n")
    install_requirements(["alpha==2.0"], home=home, python=venv, allow_conflicts=True)
    now = snapshots.capture(home, python=venv)
    delta = snapshots.diff(snap, now)
    summary = {c.describe() for c in delta.packs}
    assert summary == {"one: removed", "three: added", "two: changed (content_hash)", "two: enabled"}
    assert delta.python_changed == {"alpha": ("1.0", "2.0")}

    result = snapshots.restore(snap, home, python=venv)
    assert result.ok, result.problems
    assert snapshots.diff(snap, snapshots.capture(home, python=venv)).empty
    assert installed_packages(venv)["alpha"] == "1.0"
    assert not (home.custom_nodes / "three").exists()
    assert (home.disabled_nodes / "two").is_dir() and not (home.disabled_nodes / "two" / "extra.py").exists()


def test_reads_comfyui_manager_snapshots(home: Home, tmp_path: Path) -> None:
    cm = {"comfyui": "4b1e5a3c", "git_custom_nodes": {
              "https://github.com/ltdrdata/ComfyUI-Impact-Pack": {"hash": "a" * 40, "disabled": False},
              "https://github.com/cubiq/ComfyUI_IPAdapter_plus.git": {"hash": "b" * 40, "disabled": True}},
          "cnr_custom_nodes": {"comfyui-kjnodes": "1.0.5"},
          "file_custom_nodes": [{"filename": "my_node.py", "disabled": False}],
          "pips": {"numpy==1.26.4": "", "torch==2.3.0+cu121": "", "git+https://x.invalid/y.git": ""}}
    path = tmp_path / "cm.json"
    path.write_text(json.dumps(cm))
    snap = snapshots.load(path)
    assert snap.origin == "comfyui-manager" and snap.comfyui == "4b1e5a3c"
    impact = snap.packs["ComfyUI-Impact-Pack"]
    assert impact.source == SourceSpec(kind="git", location="https://github.com/ltdrdata/ComfyUI-Impact-Pack",
                                       version="a" * 40)
    assert snap.packs["ComfyUI_IPAdapter_plus"].enabled is False
    assert snap.packs["comfyui-kjnodes"].registry_id == "comfyui-kjnodes"
    assert snap.packs["my_node"].single_file
    assert snap.python == {"numpy": "1.26.4", "torch": "2.3.0+cu121"}
    yaml_path = tmp_path / "cm.yaml"
    import yaml

    yaml_path.write_text(yaml.safe_dump({"custom_nodes": cm}))
    assert snapshots.load(yaml_path).packs.keys() == snap.packs.keys()
    with pytest.raises(snapshots.SnapshotError):
        snapshots.Snapshot.from_dict({"something": 1})


def test_restore_reports_what_it_cannot_do(home: Home) -> None:
    snap = snapshots.Snapshot(packs={"handmade": snapshots.PackState(name="handmade", content_hash="sha256:x")},
                              python={})
    result = snapshots.restore(snap, home, python=None)
    assert not result.ok and "no source" in result.problems[0]
