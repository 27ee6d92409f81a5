"""What the manager knows about each installed pack: where it came from, which version, and a hash of its files.

Stored as one JSON file, `<home>/manager/packs.json`, rather than in state.sqlite, because:
* it describes files, and is replaced atomically (write, fsync, rename) in the same journaled step that moves them,
  so a crash leaves it matching the folders; nothing in it needs queries or concurrent writers (the manager holds
  its own lock for the whole operation);
* people and other tools (snapshots, ComfyUI-Manager users diffing an install) can read it with no SQLite at hand;
* the history of changes lives in the audit log in state.sqlite; this file is only the current state.
Whether a pack is enabled is not stored: it is where the folder is (custom_nodes/ or custom_nodes/.disabled/).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from partyflow.manager.sources import SourceSpec

__all__ = ["PackRecord", "RecordStore", "atomic_write_json", "fsync_dir", "tree_hash"]

EXCLUDED_DIRS = frozenset({".git", "__pycache__"})
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PackRecord:
    """The provenance of one installed pack."""

    name: str
    source: SourceSpec
    content_hash: str
    installed_at: str                     # ISO 8601, UTC
    version: str | None = None            # the git ref or the source's version label
    commit: str | None = None             # git: the checked-out commit
    ref_kind: str | None = None           # git: branch | tag | commit
    archive_sha256: str | None = None
    updated_at: str | None = None
    single_file: bool = False
    install_script: str | None = None     # None | "ran" | "skipped"
    catalog: str | None = None            # the catalog name it was installed by, so update asks the catalog again
    dependencies: dict[str, Any] | None = field(default=None)
    isolated: bool = False                # runs in its own venv (<home>/venvs/<name>) through a worker process

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["source"] = self.source.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PackRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["source"] = SourceSpec.from_dict(data["source"])
        return cls(**known)


class RecordStore:
    """packs.json: read whole, changed, replaced whole."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, PackRecord]:
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return {name: PackRecord.from_dict(entry) for name, entry in data.get("packs", {}).items()}

    def get(self, name: str) -> PackRecord | None:
        return self.load().get(name)

    def apply(self, put: dict[str, dict[str, Any]], delete: list[str]) -> None:
        """Set and remove records in one atomic replace; idempotent, so a journal can replay it."""
        raw: dict[str, Any] = {}
        if self.path.exists():
            raw = json.loads(self.path.read_text(encoding="utf-8")).get("packs", {})
        for name in delete:
            raw.pop(name, None)
        raw.update(put)
        atomic_write_json(self.path, {"format": FORMAT_VERSION, "packs": dict(sorted(raw.items()))})


def atomic_write_json(path: Path, data: Any) -> None:
    """Write to a temp file in the same folder, fsync, rename over `path`, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def tree_hash(path: Path, *, ignore: frozenset[str] = frozenset()) -> str:
    """sha256 over the pack's files: relative paths, executable bits, link targets and contents.

    `.git` and `__pycache__` are left out, so the hash names the content a user runs, however it was fetched;
    `ignore` leaves out more top-level files by name (bookkeeping a tool writes into the pack folder).
    """
    digest = hashlib.sha256()
    for relative, full in _entries(path):
        if relative in ignore:
            continue
        info = full.lstat()
        if stat.S_ISLNK(info.st_mode):
            digest.update(f"L\0{relative}\0{os.readlink(full)}\n".encode())
        elif stat.S_ISDIR(info.st_mode):
            digest.update(f"D\0{relative}\n".encode())
        else:
            executable = "x" if info.st_mode & 0o111 else "-"
            digest.update(f"F\0{relative}\0{executable}\0{_file_hash(full)}\n".encode())
    return "sha256:" + digest.hexdigest()


def _entries(root: Path) -> Iterator[tuple[str, Path]]:
    if root.is_file():
        yield root.name, root
        return
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in EXCLUDED_DIRS]
        base = Path(folder)
        for name in (*dirs, *files):
            if name.endswith(".pyc"):
                continue
            full = base / name
            found.append((full.relative_to(root).as_posix(), full))
    yield from sorted(found)


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
