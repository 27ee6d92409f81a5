"""Recognise a real ComfyUI installation and the Python it runs in, before anything acts on it.

Issue 14 makes an existing ComfyUI a target of the manager. Every command that will change such an install must
first know that the folder *is* ComfyUI (so a typo never creates stray `custom_nodes/` trees) and that the
interpreter that will receive dependencies can actually run (so pip never lands in partyflow's own venv by
accident). This module only checks and describes; it changes nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from partyflow.manager.errors import ManagerError

# Files every ComfyUI checkout has at its root (ComfyUI-Manager relies on the same layout).
_MARKERS = ("main.py", "nodes.py", "folder_paths.py")


@dataclass(frozen=True)
class ComfyUITarget:
    """A validated ComfyUI install: where its packs live and which interpreter runs it."""

    root: Path
    python: Path
    python_version: str

    @property
    def custom_nodes(self) -> Path:
        return self.root / "custom_nodes"

    @property
    def manager_snapshots(self) -> Path:
        """Where ComfyUI-Manager keeps its snapshot files, so both tools see the same ones."""
        return self.root / "user" / "default" / "ComfyUI-Manager" / "snapshots"


def _venv_python(root: Path) -> Path | None:
    """ComfyUI's own venv if it has one next to main.py (the usual portable/manual layouts)."""
    for folder in ("venv", ".venv"):
        for rel in ("bin/python", "Scripts/python.exe"):
            candidate = root / folder / rel
            if candidate.is_file():
                return candidate
    return None


def open_target(path: str | os.PathLike[str], python: str | os.PathLike[str] | None = None) -> ComfyUITarget:
    """Validate `path` as a ComfyUI root and pick its interpreter (`python`, else its venv, else this one).

    Raises ManagerError with a hint when the folder is not ComfyUI or the interpreter cannot run.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ManagerError(f"{root} is not a folder", hint="pass the ComfyUI folder that holds main.py")
    missing = [m for m in _MARKERS if not (root / m).is_file()]
    if missing:
        raise ManagerError(f"{root} is not a ComfyUI install (missing {', '.join(missing)})",
                           hint="pass the ComfyUI folder that holds main.py, nodes.py and folder_paths.py")
    root = root.resolve()
    chosen = Path(python).expanduser() if python else (_venv_python(root) or Path(sys.executable))
    try:
        done = subprocess.run([str(chosen), "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                              capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ManagerError(f"cannot run the Python {chosen}: {exc}",
                           hint="pass --python with the interpreter ComfyUI runs in") from None
    if done.returncode != 0 or not done.stdout.strip():
        raise ManagerError(f"the Python {chosen} does not run (exit {done.returncode})",
                           hint="pass --python with the interpreter ComfyUI runs in") from None
    return ComfyUITarget(root=root, python=chosen, python_version=done.stdout.strip())
