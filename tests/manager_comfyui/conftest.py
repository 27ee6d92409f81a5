"""A real ComfyUI 0.3.75 install for each test module, copied from the tree `setup_comfyui.py` builds.

Each module gets its own copy of the tree (25 MB, under a second) and its own venv beside it, as a real manual
install has (`<dir>/ComfyUI` + `<dir>/venv`). That venv sees the prepared ComfyUI venv's packages and partyflow's
venv's through `.pth` lines, so nothing heavy is installed, while whatever partyflow installs "into ComfyUI's
Python" lands in this module's venv only. A missing prepared tree fails the tests with the command that builds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.manager_comfyui import setup_comfyui


@dataclass(frozen=True)
class ComfyInstall:
    root: Path       # the ComfyUI folder (main.py, custom_nodes/)
    python: Path     # its venv's interpreter
    site: Path       # its venv's site-packages

    def run(self, code: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        return subprocess.run([str(self.python), "-c", code], capture_output=True, text=True, env=env, timeout=120,
                              check=False)


def prepared() -> Path:
    """The ComfyUI tree built by setup_comfyui.py; fails (never skips) when it is missing."""
    base = setup_comfyui.folder()
    root = base / "ComfyUI"
    marker = base / "ready"
    if not (root / "main.py").is_file() or not marker.is_file() or marker.read_text() != setup_comfyui.STAMP:
        pytest.fail(f"no prepared ComfyUI in {base}: run '{sys.executable} tests/manager_comfyui/setup_comfyui.py' "
                    f"first (README's test command does; ${setup_comfyui.ENV} chooses the folder)", pytrace=False)
    return root


def _site(python: Path) -> Path:
    done = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> ComfyInstall:
    source = prepared()
    base = tmp_path_factory.mktemp("comfy")
    root = base / "ComfyUI"
    shutil.copytree(source, root, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "user"))
    shared_python = source.parent / "venv" / "bin" / "python"
    interpreter = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([interpreter, "-m", "venv", "--without-pip", str(base / "venv")], check=True)
    python = base / "venv" / "bin" / "python"
    site = _site(python)
    shared_site = _site(shared_python)
    lines = [str(shared_site), *(shared_site / "zz_partyflow_shared.pth").read_text().split()]
    (site / "zz_test_shared.pth").write_text("\n".join(lines) + "\n")
    return ComfyInstall(root, python, site)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Running:
    url: str
    log: list[str]

    def object_info(self) -> dict[str, dict]:
        with urllib.request.urlopen(f"{self.url}/object_info", timeout=60) as reply:
            return json.load(reply)


@contextlib.contextmanager
def serving(comfy: ComfyInstall, scratch: Path, *, limit: float = 240.0) -> Iterator[Running]:
    """ComfyUI started as users start it (`main.py --cpu`, loopback, a free port), until it says it serves; stopped
    with SIGINT (as Ctrl-C) afterwards. Its log is read line by line, so readiness is an event, not a sleep."""
    for folder in ("user", "temp", "frontend"):
        (scratch / folder).mkdir(parents=True, exist_ok=True)
    (scratch / "frontend" / "index.html").write_text("<!doctype html><title>test</title>\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    process = subprocess.Popen(
        [str(comfy.python), "main.py", "--cpu", "--disable-auto-launch", "--listen", "127.0.0.1", "--port",
         str(port), "--disable-api-nodes", "--front-end-root", str(scratch / "frontend"), "--user-directory", str(scratch / "user"),
         "--temp-directory", str(scratch / "temp"), "--database-url", "sqlite:///:memory:"],
        cwd=comfy.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True, start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()
    log: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + limit
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"ComfyUI did not serve within {limit:g}s:\n{''.join(log[-40:])}")
            if line is None:
                pytest.fail(f"ComfyUI exited ({process.wait()}) before serving:\n{''.join(log[-40:])}")
            if "To see the GUI go to:" in line:
                break
        yield Running(f"http://127.0.0.1:{port}", log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        reader.join(timeout=10)
