"""Write-ahead journal that makes each manager operation all-or-nothing, even under SIGKILL.

An operation first writes `journal/<id>.json` in phase `prepare` and works only inside its staging folder, so
the home is untouched until it commits. Committing rewrites the journal (atomically) in phase `commit` with the
complete plan: the renames to do and the packs.json changes. Only then are the renames done. Recovery, run at the
start of every manager operation under the manager lock, therefore has two cases: a `prepare` journal is rolled
back (its staging folder deleted, its dependency changes undone), a `commit` journal is rolled forward (every rename
and record change is idempotent, so replaying a half-done plan finishes it). Either way the pack is wholly old or
wholly new.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from partyflow.manager.provenance import RecordStore, atomic_write_json, fsync_dir
from partyflow.manager.staging import ManagerPaths, checkpoint, remove_path

__all__ = ["JournalEntry", "Operation", "Recovered", "recover"]

logger = logging.getLogger(__name__)

DependencyRollback = Callable[[dict[str, Any]], None]


@dataclass
class JournalEntry:
    op_id: str
    action: str
    pack: str
    workdir: str
    phase: str = "prepare"                                       # prepare | commit
    moves: list[tuple[str, str]] = field(default_factory=list)   # (source, destination), in order
    put: dict[str, dict[str, Any]] = field(default_factory=dict)  # packs.json records to set
    delete: list[str] = field(default_factory=list)              # packs.json records to remove
    dependencies: dict[str, Any] | None = None                  # what the dependency step changed, to undo it

    @classmethod
    def read(cls, path: Path) -> JournalEntry:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["moves"] = [tuple(m) for m in data.get("moves", [])]
        return cls(**data)


@dataclass(frozen=True)
class Recovered:
    """One interrupted operation that recovery finished or undid."""

    op_id: str
    action: str
    pack: str
    outcome: str   # "rolled back" | "completed"


class Operation:
    """One journaled change; `commit` is the point of no return."""

    def __init__(self, paths: ManagerPaths, action: str, pack: str) -> None:
        self.paths = paths
        self.op_id, self.workdir = paths.new_workdir()
        self.entry = JournalEntry(self.op_id, action, pack, str(self.workdir))
        self.file = paths.journal / f"{self.op_id}.json"
        self.dependency_report: Any = None  # the live report (with its rollback), while the process lives
        self._write()

    def _write(self) -> None:
        atomic_write_json(self.file, asdict(self.entry))

    def note_dependencies(self, report: Any, data: dict[str, Any]) -> None:
        """Remember what the dependency step installed, so a failure or a crash before commit can undo it."""
        self.dependency_report = report
        self.entry.dependencies = data
        self._write()

    def commit(self, moves: list[tuple[Path, Path]], *, put: dict[str, dict[str, Any]] | None = None,
               delete: list[str] | None = None) -> None:
        """Record the plan, then carry it out and clean up."""
        self.entry.phase = "commit"
        self.entry.moves = [(str(src), str(dst)) for src, dst in moves]
        self.entry.put = put or {}
        self.entry.delete = delete or []
        self._write()
        checkpoint("committed")
        _roll_forward(self.paths, self.entry)
        self.file.unlink(missing_ok=True)

    def abort(self, rollback_dependencies: DependencyRollback | None = None) -> None:
        """Undo an operation that has not committed (its staging folder goes; the home was never touched).

        After commit there is no undo: a plan that failed half way (a full disk, say) stays journaled and the next
        operation's recovery finishes it.
        """
        if self.entry.phase == "commit":
            return
        _roll_back(self.entry, rollback_dependencies)
        self.file.unlink(missing_ok=True)


def _roll_forward(paths: ManagerPaths, entry: JournalEntry) -> None:
    for index in range(_first_pending(entry.moves), len(entry.moves)):
        src, dst = (Path(p) for p in entry.moves[index])
        if os.path.lexists(src):
            if os.path.lexists(dst):
                # Impossible for our plans unless something else wrote there meanwhile: keep what is there
                # rather than delete files we did not make; the staged copy is cleaned up with the workdir.
                logger.warning("recovery: %s already exists; leaving it and not moving %s there", dst, src)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                fsync_dir(dst.parent)
                if src.parent != dst.parent:
                    fsync_dir(src.parent)
        checkpoint(f"moved-{index}")
    if entry.put or entry.delete:
        RecordStore(paths.records).apply(entry.put, entry.delete)
    checkpoint("recorded")
    remove_path(Path(entry.workdir))


def _first_pending(moves: list[tuple[str, str]]) -> int:
    """Index of the first rename not yet done. A plan may move A away and then B into A's place, so "A exists"
    alone cannot tell; the last move whose source is gone and whose destination exists marks the progress."""
    for index in range(len(moves) - 1, -1, -1):
        src, dst = moves[index]
        if not os.path.lexists(src) and os.path.lexists(dst):
            return index + 1
    return 0


def _roll_back(entry: JournalEntry, rollback_dependencies: DependencyRollback | None) -> None:
    if entry.dependencies and rollback_dependencies is not None:
        rollback_dependencies(entry.dependencies)
    remove_path(Path(entry.workdir))


def recover(paths: ManagerPaths, rollback_dependencies: DependencyRollback | None = None) -> list[Recovered]:
    """Finish or undo every interrupted operation, then clear staging leftovers. Call with the lock held."""
    done: list[Recovered] = []
    if paths.journal.is_dir():
        for file in sorted(paths.journal.glob("*.json")):
            try:
                entry = JournalEntry.read(file)
            except (OSError, ValueError, TypeError):
                file.unlink(missing_ok=True)  # a journal is written atomically; an unreadable one never committed
                continue
            if entry.phase == "commit":
                _roll_forward(paths, entry)
                outcome = "completed"
            else:
                _roll_back(entry, rollback_dependencies)
                outcome = "rolled back"
            file.unlink(missing_ok=True)
            done.append(Recovered(entry.op_id, entry.action, entry.pack, outcome))
    for folder in (paths.journal, paths.root):  # temp files of an interrupted atomic write
        for stray in folder.glob(".*.json.*") if folder.is_dir() else ():
            stray.unlink(missing_ok=True)
    staging = paths.staging
    if staging.is_dir():
        for leftover in staging.iterdir():
            remove_path(leftover)
    return done

