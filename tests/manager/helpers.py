"""Helpers for the manager tests: real packs on disk, real git repositories (bare remotes), real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from partyflow.config import Home
from partyflow.manager.audit import AuditEntry, AuditLog
from partyflow.manager.staging import PAUSE_ENV
from partyflow.security.levels import MANAGER_LEVEL_ENV as LEVEL_ENV

ROOT = Path(__file__).resolve().parents[2]

PACK_INIT = '''
VERSION = {version!r}


class {cls}:
    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{}}}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "test"

    def run(self):
        return (VERSION,)


NODE_CLASS_MAPPINGS = {{"{cls}": {cls}}}
'''


def write_pack(path: Path, version: str = "1", *, cls: str = "Hello", files: dict[str, str] | None = None) -> Path:
    """A valid pack folder whose __init__ carries `version`."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "__init__.py").write_text(PACK_INIT.format(version=version, cls=cls))
    for name, text in (files or {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def pack_version(path: Path) -> str:
    """The VERSION an installed pack's __init__ declares."""
    for line in (path / "__init__.py").read_text().splitlines():
        if line.startswith("VERSION = "):
            return line.split("=", 1)[1].strip().strip("'\"")
    raise AssertionError(f"no VERSION in {path}")


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    done = subprocess.run(["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@dataclass
class GitRemote:
    """A bare repository (the remote) and the working clone that feeds it."""

    bare: Path
    work: Path
    commits: dict[str, str]

    def commit_version(self, version: str, *, branch: str = "main", label: str | None = None) -> str:
        git("checkout", "-q", branch, cwd=self.work)
        write_pack(self.work, version)
        git("commit", "-qam", f"version {version}", cwd=self.work)
        git("push", "-q", "origin", branch, cwd=self.work)
        commit = git("rev-parse", "HEAD", cwd=self.work)
        self.commits[label or version] = commit
        return commit


def audit_entries(home: Home) -> list[AuditEntry]:
    with AuditLog(home) as log:
        return log.entries()


def assert_settled(home: Home) -> None:
    """No journal and no staging leftovers: nothing half done."""
    manager_dir = home.root / "manager"
    assert not list((manager_dir / "journal").glob("*")), "a journal was left behind"
    staging = manager_dir / "staging"
    assert not staging.exists() or not list(staging.iterdir()), "staging was left behind"


def cli(*args: str, home: Home, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("PARTYFLOW_HOME", LEVEL_ENV, PAUSE_ENV)}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "partyflow", *args, "--home", str(home.root)], capture_output=True,
                          text=True, env=full_env, cwd=cwd or ROOT, timeout=120)


def cli_json(*args: str, home: Home) -> object:
    done = cli(*args, "--json", home=home)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
