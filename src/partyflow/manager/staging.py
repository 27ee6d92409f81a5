"""The manager's working area in the home, its lock, and the test hook that pauses an operation at a named step.

Staging must be on the same filesystem as custom_nodes, so that activating a pack is a rename (atomic) rather than
a copy. The manager's own state lives in `<home>/manager/`, not inside custom_nodes, because ComfyUI would try to
import any extra folder there as a pack.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from partyflow.config import Home
from partyflow.manager.errors import ManagerError

__all__ = ["PAUSE_ENV", "ManagerPaths", "checkpoint", "operation_lock"]

PAUSE_ENV = "PARTYFLOW_MANAGER_PAUSE_AT"
PAUSE_MARKER = "PARTYFLOW-MANAGER-PAUSED"


@dataclass(frozen=True)
class ManagerPaths:
    """Where the manager keeps packs.json, journals, staging, trash, logs and its lock."""

    home: Home

    @property
    def root(self) -> Path:
        return self.home.root / "manager"

    @property
    def records(self) -> Path:
        return self.root / "packs.json"

    @property
    def journal(self) -> Path:
        return self.root / "journal"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def lock_file(self) -> Path:
        return self.root / "lock"

    @property
    def staging(self) -> Path:
        """`<home>/manager/staging`, or a hidden folder beside custom_nodes when that is on another filesystem."""
        default = self.root / "staging"
        nodes = self.home.custom_nodes
        if os.stat(nodes).st_dev == os.stat(self.root).st_dev:
            return default
        return nodes.resolve().parent / ".partyflow-staging"

    def ensure(self) -> ManagerPaths:
        for path in (self.home.custom_nodes, self.home.disabled_nodes, self.root, self.journal, self.logs):
            path.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        return self

    def new_workdir(self) -> tuple[str, Path]:
        """A fresh, empty folder for one operation, named by its id."""
        op_id = uuid.uuid4().hex[:16]
        workdir = self.staging / op_id
        workdir.mkdir(parents=True)
        return op_id, workdir

    def enabled_path(self, name: str, single_file: bool = False) -> Path:
        return self.home.custom_nodes / (f"{name}.py" if single_file else name)

    def disabled_path(self, name: str, single_file: bool = False) -> Path:
        return self.home.disabled_nodes / (f"{name}.py" if single_file else name)


@contextlib.contextmanager
def operation_lock(paths: ManagerPaths, *, wait: bool = True) -> Iterator[None]:
    """One manager operation per home at a time (the CLI and a server may share one). The OS drops the lock of
    a killed process, so a crash never leaves the home locked."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.lock_file, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise ManagerError("another manager operation is running on this home",
                               hint="wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def checkpoint(step: str) -> None:
    """Crash-test hook: when `$PARTYFLOW_MANAGER_PAUSE_AT` names this step, print a marker and block forever.

    The test reads the marker from stderr and SIGKILLs the process, so it dies exactly here. Costs one
    environment lookup otherwise.
    """
    if os.environ.get(PAUSE_ENV) != step:
        return
    sys.stderr.write(f"{PAUSE_MARKER} {step}\n")
    sys.stderr.flush()
    threading.Event().wait()


def remove_path(path: Path) -> None:
    """Delete a file, link or folder if present (used for staging and trash, whose content we made)."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)
