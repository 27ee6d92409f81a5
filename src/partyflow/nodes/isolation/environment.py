"""The virtual environment of an isolated pack: where it lives, how it is made, how partyflow is found inside it.

Each isolated pack gets `<home>/venvs/<pack>/`, made with `uv venv` from the interpreter running partyflow (so
the worker speaks the same Python and pickle dialect). Nothing of the host's site-packages is visible there: that
is the point, two packs may need different versions of one library. The worker still needs partyflow's own node
protocol and ComfyUI compatibility modules, which are standard-library only, so the venv gets one `.pth` file
naming a folder that holds nothing but a link to the host's `partyflow` package. Putting the host's whole
site-packages on the path instead would bring the very versions the pack is isolated from.

The venvs live outside `<home>/manager/` on purpose: they are large, platform-specific and rebuildable, so backups
leave them out and a restore reports which packs need theirs rebuilt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["EnvironmentError_", "create_environment", "ensure_partyflow_link", "python_of", "remove_environment",
           "venv_dir"]

LINK_FOLDER = "partyflow-host"
PTH_NAME = "partyflow_host.pth"


class EnvironmentError_(RuntimeError):
    """The pack's virtual environment cannot be made or used; the message says which and what to do."""


def venv_dir(home_root: Path, pack: str) -> Path:
    return Path(home_root) / "venvs" / pack


def python_of(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def create_environment(venv: Path, *, python: str = sys.executable, uv: str | None = None) -> Path:
    """A fresh venv at `venv` (replacing one there) with partyflow linked in; returns its python."""
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    uv = uv or _find_uv()
    command = ([uv, "venv", "-q", "--python", python, str(venv)] if uv
               else [python, "-m", "venv", "--without-pip", str(venv)])
    done = subprocess.run(command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise EnvironmentError_(f"cannot create the virtual environment {venv}: "
                                f"{(done.stderr or done.stdout).strip()[-400:]}")
    ensure_partyflow_link(venv)
    return python_of(venv)


def remove_environment(venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)


def ensure_partyflow_link(venv: Path) -> None:
    """Point `<venv>/partyflow-host/partyflow` at the running partyflow package (re-done at every worker start,
    so moving or reinstalling partyflow never leaves a stale link) and make sure the `.pth` names that folder."""
    package = Path(__file__).resolve().parents[2]  # .../partyflow
    folder = venv / LINK_FOLDER
    folder.mkdir(exist_ok=True)
    link = folder / "partyflow"
    if link.is_symlink() and Path(os.readlink(link)) == package:
        pass
    else:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(package, target_is_directory=True)
    for site in _site_packages(venv):
        pth = site / PTH_NAME
        wanted = str(folder.resolve()) + "\n"
        if not pth.is_file() or pth.read_text(encoding="utf-8") != wanted:
            pth.write_text(wanted, encoding="utf-8")


def _site_packages(venv: Path) -> list[Path]:
    found = sorted(venv.glob("lib/python*/site-packages")) + sorted(venv.glob("Lib/site-packages"))
    if not found:
        raise EnvironmentError_(f"{venv} has no site-packages folder; it is not a virtual environment")
    return found


def _find_uv() -> str | None:
    """uv from its Python package (a dependency of partyflow), else from PATH; pure lookup, no import of the
    manager so the node layer stays below it."""
    try:
        import uv  # type: ignore[import-not-found]

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")
