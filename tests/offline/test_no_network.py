"""`bundle install` attempts no connection: every proxy points at a loopback listener that counts connections,
and every Python process of the install (the CLI, the pack import check) logs each connect and name lookup
through an audit hook. A control run shows the same trap catches an ordinary download attempt."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from partyflow.config import Home
from partyflow.manager.dependencies import installed_packages
from partyflow.manager.packs import PackManager

from .conftest import ROOT

HOOK = '''
import os, socket, sys

def _partyflow_net_trap(event, args):
    if event == "socket.connect" and args[0].family in (socket.AF_INET, socket.AF_INET6):
        detail = args[1]
    elif event == "socket.getaddrinfo":
        detail = args[0]
    else:
        return
    with open(os.environ["NET_TRAP_LOG"], "a") as log:
        log.write(f"{event} {detail!r} pid={os.getpid()} argv={sys.argv[:3]!r}\\n")

sys.addaudithook(_partyflow_net_trap)
with open(os.environ["NET_TRAP_LOG"], "a") as _log:
    _log.write(f"start pid={os.getpid()} argv={sys.argv[:3]!r}\\n")
'''


@pytest.fixture
def trap(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path, list[int]]]:
    """(environment for the child, its audit log, the proxy's connection count)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    accepted = [0]
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            accepted[0] += 1
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    site = tmp_path / "trap-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HOOK)
    proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if k.upper() not in ("NO_PROXY", "PARTYFLOW_HOME", "PYTHONPATH")}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = proxy
    env.update(PYTHONPATH=str(site), NET_TRAP_LOG=str(tmp_path / "net.log"))
    try:
        yield env, tmp_path / "net.log", accepted
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_bundle_install_attempts_no_connection(make_bundle, target: Home, venv: str, trap) -> None:
    env, log, accepted = trap
    bundle = make_bundle("one", "two")

    control = subprocess.run([sys.executable, "-c", "import urllib.request as u\ntry:\n"
                              "    u.urlopen('http://pypi.invalid/simple/', timeout=5)\nexcept Exception:\n"
                              "    pass\n"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert control.returncode == 0, control.stderr
    assert "socket.connect" in log.read_text() and accepted[0] >= 1, "the trap would not see a download"
    log.unlink()
    accepted[0] = 0

    done = subprocess.run([sys.executable, "-m", "partyflow", "bundle", "install", str(bundle), "--yes", "--json",
                           "--home", str(target.root)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    lines = log.read_text().splitlines()
    assert [line for line in lines if not line.startswith("start ")] == [], lines
    watched = " ".join(lines)  # the trap really ran in the CLI and in the pack import checker
    assert "'bundle', 'install'" in watched and "/manager/staging/" in watched  # the CLI and a verifier
    assert accepted[0] == 0
    assert {p.name for p in PackManager(target).installed()} == {"one", "two"}
    assert installed_packages(venv)["beta"] == "1.0"
