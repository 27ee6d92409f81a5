"""Build the virtual environment of a pack installed with `--isolate`, next to the staged pack, then swap it in.

The environment is made in `<home>/venvs/.staging-<pack>-<id>/`, the pack's requirements are installed there (not
in partyflow's environment, and without the host's conflict rules: a different version of a library is the
reason to isolate), and the staged pack is imported in a worker of that venv to prove it loads and to learn its
node types. Only after the manager has committed the pack does `activate` rename the venv to `<home>/venvs/<pack>/`
(the previous one, on update, goes away after the rename). A venv can be moved because the worker is started as
`<venv>/bin/python -m ...` and the `.pth` that makes partyflow importable is rewritten at every worker start.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from partyflow.config import Home
from partyflow.manager.errors import ManagerError
from partyflow.nodes.isolation.client import WorkerError
from partyflow.nodes.isolation.environment import EnvironmentError_, create_environment, venv_dir

__all__ = ["StagedEnvironment", "prepare_isolated", "remove_isolated"]


@dataclass
class StagedEnvironment:
    pack: str
    staging: Path
    final: Path
    report: Any
    node_types: tuple[str, ...] = field(default=())

    def activate(self) -> None:
        """Put the staged venv in place of the pack's current one."""
        old = self.final.with_name(f".old-{self.pack}-{uuid.uuid4().hex[:8]}")
        if self.final.exists():
            self.final.rename(old)
        self.staging.rename(self.final)
        shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def prepare_isolated(pack_dir: Path, name: str, home: Home, *, timeout: float = 60.0) -> StagedEnvironment:
    """A staged venv with the pack's requirements, in which the pack was imported; raises ManagerError."""
    from partyflow.manager.dependencies import install_for_pack
    from partyflow.nodes.isolation.client import WorkerClient

    final = venv_dir(home.root, name)
    staging = final.with_name(f".staging-{name}-{uuid.uuid4().hex[:8]}")
    try:
        python = create_environment(staging)
        report = install_for_pack(pack_dir, home=home, python=str(python), allow_conflicts=True) \
            if pack_dir.is_dir() else None
        client = WorkerClient(name, pack_dir, python, home.root, venv=staging, timeout=timeout)
        try:
            info = client.start()
        finally:
            client.close()
    except (EnvironmentError_, WorkerError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ManagerError(f"{name}: {exc}", pack=name) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return StagedEnvironment(name, staging, final, report, tuple(c["class_type"] for c in info["classes"]))


def remove_isolated(home: Home, name: str) -> None:
    """Delete an uninstalled pack's venv (nothing else uses it)."""
    shutil.rmtree(venv_dir(home.root, name), ignore_errors=True)
