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
