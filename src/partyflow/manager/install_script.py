"""Run a pack's `install.py` (ComfyUI-Manager's post-install hook) in a child process, logged, with a timeout.

It runs in the staged copy before activation, so a failing script leaves nothing installed. Whether it may run at
all is the security level's decision (see security.py); this module only runs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from partyflow.manager.errors import ManagerError

__all__ = ["run_install_script"]


def run_install_script(pack_dir: Path, log_file: Path, *, home_root: Path, timeout: float = 600.0,
                       python: str | None = None, comfyui_path: Path | None = None) -> None:
    """Run `pack_dir/install.py` with the host's Python (or `python`: a ComfyUI target's, whose root is then
    `COMFYUI_PATH`, as ComfyUI-Manager sets it); its output goes to `log_file`. Raises ManagerError."""
    name = pack_dir.name
    python = python or sys.executable
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PARTYFLOW_HOME": str(home_root), "COMFYUI_PATH": str(comfyui_path or home_root)}
    with open(log_file, "ab") as log:
        log.write(f"--- {name}: {python} install.py\n".encode())
        log.flush()
        start = log.tell()
        process = subprocess.Popen([python, "install.py"], cwd=pack_dir, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its whole process group: install scripts spawn pip
            process.wait()
            raise ManagerError(f"{name}: install.py did not finish within {timeout:g} seconds", pack=name,
                               hint=f"its output is in {log_file}") from None
    if code != 0:
        with open(log_file, "rb") as log:
            log.seek(start)
            tail = log.read().decode("utf-8", "replace").strip().splitlines()[-3:]
        raise ManagerError(f"{name}: install.py failed with exit code {code}: {' | '.join(tail)}", pack=name,
                           hint=f"full output in {log_file}")
