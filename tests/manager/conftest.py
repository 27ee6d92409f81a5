"""Fixtures for the manager tests (helpers live in helpers.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.manager.helpers import ROOT, GitRemote, git, write_pack

from partyflow.config import Home
from partyflow.manager.packs import PackManager
from partyflow.manager.staging import PAUSE_ENV
from partyflow.security.levels import MANAGER_LEVEL_ENV as LEVEL_ENV


@pytest.fixture
def git_remote(tmp_path: Path) -> GitRemote:
    """`remotepack.git`: main has v1 (tagged v1.0) then v2; branch `dev` (from v1) has v3."""
    bare = tmp_path / "remotes" / "remotepack.git"
    work = tmp_path / "work" / "remotepack"
    bare.mkdir(parents=True)
    git("init", "-q", "--bare", cwd=bare)
    work.mkdir(parents=True)
    git("init", "-q", cwd=work)
    git("remote", "add", "origin", str(bare), cwd=work)
    write_pack(work, "1")
    git("add", ".", cwd=work)
    git("commit", "-qm", "version 1", cwd=work)
    git("tag", "v1.0", cwd=work)
    git("push", "-q", "origin", "main", "--tags", cwd=work)
    remote = GitRemote(bare, work, {"1": git("rev-parse", "HEAD", cwd=work)})
    git("checkout", "-qb", "dev", cwd=work)
    git("push", "-q", "origin", "dev", cwd=work)
    remote.commit_version("3", branch="dev")
    remote.commit_version("2", branch="main")
    git("symbolic-ref", "HEAD", "refs/heads/main", cwd=bare)
    return remote


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (LEVEL_ENV, PAUSE_ENV, "PARTYFLOW_HOME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


@pytest.fixture
def manager(home: Home) -> PackManager:
    return PackManager(home, verify_timeout=30)


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    path = tmp_path / "sources"
    path.mkdir()
    return path


@pytest.fixture
def paused() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start a Python snippet that pauses at a manager step; yields a starter; kills leftovers at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(code: str, step: str) -> subprocess.Popen[str]:
        env = {**{k: v for k, v in os.environ.items() if k != LEVEL_ENV}, PAUSE_ENV: step}
        process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, text=True, cwd=ROOT)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
