"""A ComfyUI target is recognised only when it is one, and its own venv's Python is the one chosen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from partyflow.manager.comfyui_target import open_target
from partyflow.manager.errors import ManagerError


def _comfy_tree(root: Path) -> Path:
    root.mkdir()
    for name in ("main.py", "nodes.py", "folder_paths.py"):
        (root / name).write_text("# part of a minimal ComfyUI tree\n")
    (root / "custom_nodes").mkdir()
    return root


def test_comfyui_venv_is_chosen(tmp_path: Path) -> None:
    root = _comfy_tree(tmp_path / "ComfyUI")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    target = open_target(root)
    assert target.python == root.resolve() / "venv" / "bin" / "python"
    assert target.python_version == ".".join(map(str, sys.version_info[:3]))
    assert target.manager_snapshots == root.resolve() / "user/default/ComfyUI-Manager/snapshots"


def test_not_comfyui_or_broken_python_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ManagerError, match="not a ComfyUI install"):
        open_target(plain)
    assert list(plain.iterdir()) == []
    root = _comfy_tree(tmp_path / "ComfyUI")
    with pytest.raises(ManagerError, match="cannot run the Python"):
        open_target(root, python=tmp_path / "no-such-python")
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(ManagerError, match="does not run"):
        open_target(root, python=broken)
    assert sorted(p.name for p in root.iterdir()) == ["custom_nodes", "folder_paths.py", "main.py", "nodes.py"]


def test_without_a_venv_or_with_partyflows_own_python_the_target_is_refused(tmp_path: Path) -> None:
    root = _comfy_tree(tmp_path / "ComfyUI")
    with pytest.raises(ManagerError, match="cannot tell which Python") as caught:
        open_target(root)
    assert caught.value.user_error and "--comfyui-python" in (caught.value.hint or "")
    with pytest.raises(ManagerError, match="partyflow's own Python environment"):
        open_target(root, python=sys.executable)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    assert open_target(root).python == tmp_path / "venv" / "bin" / "python"  # a venv beside the ComfyUI folder


def test_target_home_reads_comfyui_managers_disabled_names(tmp_path: Path) -> None:
    from partyflow.manager.packs import PackManager
    from partyflow.manager.targets import resolve

    root = _comfy_tree(tmp_path / "ComfyUI")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    nodes = root / "custom_nodes"
    for folder in (nodes / "old.disabled", nodes / ".disabled" / "reg@1_0_2", nodes / ".disabled" / "clone@nightly"):
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    (nodes / "single.py.disabled").write_text("NODE_CLASS_MAPPINGS = {}\n")
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[target]\ncomfyui = "../ComfyUI"\n')  # relative to the home
    manager = PackManager(resolve(home))
    found = {p.name: p for p in manager.installed()}
    assert set(found) == {"old", "reg", "clone", "single"} and not any(p.enabled for p in found.values())
    assert found["single"].single_file
    manager.enable("old")
    manager.enable("reg")
    assert (nodes / "old").is_dir() and (nodes / "reg").is_dir()
    assert not (tmp_path / "home" / "manager").exists()  # state lives with the install
    assert (root / "user" / "__partyflow" / "manager").is_dir()


def test_comfyui_log_is_parsed_per_pack() -> None:
    from partyflow.manager.comfyui_doctor import parse_log

    log = """Traceback (most recent call last):
  File "/c/nodes.py", line 2146, in load_custom_node
ModuleNotFoundError: No module named 'x'
Cannot import /c/custom_nodes/bad module for custom nodes: No module named 'x'

Import times for custom nodes:
   0.0 seconds: /c/custom_nodes/good.py
   1.5 seconds (IMPORT FAILED): /c/custom_nodes/bad

Starting server
"""
    parsed = parse_log(log)
    assert parsed.finished
    assert parsed.times == {"/c/custom_nodes/good.py": (0.0, True), "/c/custom_nodes/bad": (1.5, False)}
    assert parsed.errors["/c/custom_nodes/bad"].startswith("Traceback")
    assert parsed.errors["/c/custom_nodes/bad"].endswith("No module named 'x'")
