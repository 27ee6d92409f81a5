"""Recognise a real ComfyUI installation and the Python it runs in, before anything acts on it.

Issue 14 makes an existing ComfyUI a target of the manager. Every command that will change such an install must
first know that the folder *is* ComfyUI (so a typo never creates stray `custom_nodes/` trees) and that the
interpreter that will receive dependencies can actually run (so pip never lands in partyflow's own venv by
accident). This module only checks and describes; it changes nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from partyflow.manager.errors import ManagerError

# Files every ComfyUI checkout has at its root (ComfyUI-Manager relies on the same layout).
_MARKERS = ("main.py", "nodes.py", "folder_paths.py")
# Single-file packs ComfyUI's own repository keeps in custom_nodes/ (0.3.x: the websocket image output node).
_SHIPPED = frozenset({"websocket_image_save.py"})


def ships_with_comfyui(target: ComfyUITarget, path: Path) -> bool:
    """Whether the pack at `path` is one ComfyUI itself ships in custom_nodes/ (part of the ComfyUI version, not of
    the set of packs an environment promotes; `.disabled` copies of it included)."""
    name = path.name.removesuffix(".disabled")
    return name in _SHIPPED and path.parent.resolve() in (target.custom_nodes.resolve(),
                                                          (target.custom_nodes / ".disabled").resolve())


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
    def state_dir(self) -> Path:
        """partyflow's own state for this install (journal, pack records, audit log, keys, config).

        Under ComfyUI's user folder, so it travels with the install and stays on the filesystem of custom_nodes
        (activation is a rename); the `__` prefix makes it a "system user" folder that ComfyUI's HTTP API never
        serves, and ComfyUI-Manager keeps its own files elsewhere (user/default/ComfyUI-Manager)."""
        return self.root / "user" / "__partyflow"

    @property
    def manager_snapshots(self) -> Path:
        """Where ComfyUI-Manager keeps its snapshot files, so both tools see the same ones."""
        return self.root / "user" / "default" / "ComfyUI-Manager" / "snapshots"


def _venv_python(root: Path) -> Path | None:
    """ComfyUI's own environment: a venv inside the root (manual installs), or beside it (`../venv`, and the
    Windows portable build's `../python_embeded`)."""
    for folder in (root / "venv", root / ".venv", root.parent / "venv", root.parent / "python_embeded"):
        for rel in ("bin/python", "Scripts/python.exe", "python.exe"):
            candidate = folder / rel
            if candidate.is_file():
                return candidate
    return None


def open_target(path: str | os.PathLike[str], python: str | os.PathLike[str] | None = None) -> ComfyUITarget:
    """Validate `path` as a ComfyUI root and pick its interpreter (`python`, else its venv; refused when none is found).

    Raises ManagerError with a hint when the folder is not ComfyUI or the interpreter cannot run.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ManagerError(f"{root} is not a folder", hint="pass the ComfyUI folder that holds main.py", user_error=True)
    missing = [m for m in _MARKERS if not (root / m).is_file()]
    if missing:
        raise ManagerError(f"{root} is not a ComfyUI install (missing {', '.join(missing)})",
                           hint="pass the ComfyUI folder that holds main.py, nodes.py and folder_paths.py",
                           user_error=True)
    root = root.resolve()
    if python:
        chosen = Path(python).expanduser()
        if os.sep not in str(python):
            chosen = Path(shutil.which(str(python)) or python)
    else:
        found = _venv_python(root)
        if found is None:
            raise ManagerError(f"cannot tell which Python {root} runs in: no venv/ or .venv/ in it or beside it",
                               hint="pass --comfyui-python with the interpreter ComfyUI runs in (or set [target] "
                                    "python in config.toml)", user_error=True)
        chosen = found
    try:
        done = subprocess.run([str(chosen), "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3]); "
                               "print(sys.prefix)"],
                              capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ManagerError(f"cannot run the Python {chosen}: {exc}",
                           hint="pass --comfyui-python with the interpreter ComfyUI runs in", user_error=True) from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or len(lines) < 2:
        raise ManagerError(f"the Python {chosen} does not run (exit {done.returncode})",
                           hint="pass --comfyui-python with the interpreter ComfyUI runs in", user_error=True) from None
    if Path(lines[1]).resolve() == Path(sys.prefix).resolve():
        raise ManagerError(f"{chosen} is partyflow's own Python environment; pack dependencies for {root} must "
                           "go to the environment ComfyUI runs in", user_error=True,
                           hint="pass --comfyui-python with ComfyUI's interpreter (its venv)")
    return ComfyUITarget(root=root, python=chosen, python_version=lines[0])
