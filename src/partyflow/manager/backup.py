"""Back up a home into one archive, and restore it, refusing any archive that is not exactly what was written.

What goes in: `custom_nodes/` (with `.disabled/` and the packs' `.git`), the manager's state in `manager/` (not its
lock, journal or staging, which describe operations in flight), `config.toml`, `user/`, `snapshots/`, and the
SQLite state. The database is copied with SQLite's online backup API, one read transaction, so a server writing
to it at the same time neither blocks nor yields a torn copy; copying the file (and its WAL) could. The manager
lock is held while packs and their records are read, so they match. Models, inputs, outputs, bundles, the
wheelhouse and isolated packs' venvs are left out: they are large and re-creatable, and a restore keeps the
target home's copies of them.

The archive is a gzip'd tar: `home/...` members and, last, `MANIFEST.json` with the size and sha256 of every file
(and each folder and link). Restore extracts into a staging folder beside the home, checks every file against the
manifest (missing, extra, changed, unsafe paths and links, a truncated stream are all refused with the file named),
checks the database, then swaps the staged folder in with renames. `config.toml` may hold API keys: it is the
user's own backup, so it is kept, but nothing here ever prints a file's content.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from partyflow import __version__
from partyflow.config import Home
from partyflow.manager.errors import ManagerError
from partyflow.manager.staging import ManagerPaths, operation_lock

__all__ = ["BackupError", "BackupSummary", "RestoreSummary", "create_backup", "restore_backup", "verify_backup"]

FORMAT = "partyflow-backup"
FORMAT_VERSION = 1
MANIFEST = "MANIFEST.json"
PREFIX = "home/"
DB_NAME = "state.sqlite"
INCLUDED = ("custom_nodes", "manager", "config.toml", "user", "snapshots")
SKIPPED_NAMES = frozenset({"__pycache__"})
SKIPPED_MANAGER = frozenset({"lock", "journal", "staging"})
# kept from the target home: large and re-creatable (models, venvs, caches), or this machine's own trust (keys,
# the vulnerability database) that a backup from elsewhere must not wipe
KEPT_FROM_TARGET = ("models", "input", "output", "temp", "bundles", "wheelhouse", "venvs", "keys", "vulndb", "cache")
_CHUNK = 1 << 20


class BackupError(ManagerError):
    """A backup that cannot be made, or an archive that is refused; the home was not changed."""


@dataclass(frozen=True)
class BackupSummary:
    path: Path
    files: int
    bytes: int
    database: bool
    excluded: tuple[str, ...]
    external_links: tuple[str, ...] = ()   # links to outside the home: not archived (a restore would refuse them)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "files": self.files, "bytes": self.bytes, "database": self.database,
                "excluded": list(self.excluded), "external_links": list(self.external_links)}


@dataclass(frozen=True)
class RestoreSummary:
    home: Path
    files: int
    created_at: str
    replaced: bool
    needs_environment: tuple[str, ...] = field(default=())   # isolated packs whose venv must be rebuilt

    def to_dict(self) -> dict[str, Any]:
        return {"home": str(self.home), "files": self.files, "created_at": self.created_at,
                "replaced": self.replaced, "needs_environment": list(self.needs_environment)}


# --- create ------------------------------------------------------------------------------------------------

def create_backup(home: Home, out: Path | None = None) -> BackupSummary:
    """Write an archive of `home` to `out` (default `./partyflow-backup-<time>.tar.gz`) via a `.partial` file."""
    if not home.root.is_dir():
        raise BackupError(f"{home.root} is not a partyflow home (no such folder)", user_error=True)
    stamp = datetime.now(UTC)
    out = Path(out) if out is not None else Path(f"partyflow-backup-{stamp:%Y%m%d-%H%M%S}.tar.gz")
    out = out.absolute()
    if out.is_relative_to(home.root.resolve()):
        raise BackupError(f"the backup {out} would be inside the home it backs up", user_error=True,
                          hint="write it somewhere outside the home")
    partial = out.with_name(out.name + ".partial")
    entries: list[dict[str, Any]] = []
    external: list[str] = []
    try:
        with tarfile.open(partial, "w:gz") as archive, tempfile.TemporaryDirectory() as scratch:
            with operation_lock(ManagerPaths(home)):
                for relative, full in _walk(home):
                    if full.is_symlink() and _link_escapes(relative, os.readlink(full)):
                        external.append(relative)
                        continue
                    entries.append(_add(archive, relative, full))
            database = _add_database(archive, home, Path(scratch), entries)
            manifest = {"format": FORMAT, "version": FORMAT_VERSION, "created_at": stamp.isoformat(timespec="seconds"),
                        "partyflow": __version__, "source_home": str(home.root), "entries": entries,
                        "excluded": list(KEPT_FROM_TARGET)}
            data = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime = len(data), int(stamp.timestamp())
            archive.addfile(info, io.BytesIO(data))
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    files = [e for e in entries if e["type"] == "file"]
    return BackupSummary(out, len(files), sum(e["size"] for e in files), database, KEPT_FROM_TARGET,
                         tuple(external))


def _link_escapes(relative: str, target: str) -> bool:
    """Whether a link at `relative` (inside the home) points outside it: absolute, or `..` past the root."""
    link = PurePosixPath(target)
    resolved = os.path.normpath(str(PurePosixPath(relative).parent / link))
    return link.is_absolute() or resolved == ".." or resolved.startswith("../")


def _walk(home: Home) -> Iterator[tuple[str, Path]]:
    """(relative posix path, full path) of what is backed up, folders before their contents, sorted."""
    for top in INCLUDED:
        root = _top(home, top)
        if root is None or not os.path.lexists(root):
            continue
        yield top, root
        if not root.is_dir() or root.is_symlink():
            continue
        for folder, dirs, files in os.walk(root):
            base = Path(folder)
            rel_base = (PurePosixPath(top) / base.relative_to(root).as_posix()).as_posix().removesuffix("/.")
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_NAMES
                             and not (rel_base == "manager" and d in SKIPPED_MANAGER))
            for name in dirs:
                yield f"{rel_base}/{name}", base / name
            for name in sorted(files):
                if name.endswith(".pyc") or (rel_base == "manager" and name in SKIPPED_MANAGER):
                    continue
                yield f"{rel_base}/{name}", base / name


def _top(home: Home, top: str) -> Path | None:
    """Where a backed-up top-level entry lives. For a ComfyUI target (manager.target_home) custom_nodes and the
    snapshots are the install's own (ComfyUI-Manager's snapshot folder); its user/ folder, which holds partyflow's
    state folder itself, is not walked a second time."""
    if getattr(home, "target", None) is not None:
        if top == "user":
            return None
        if top in ("custom_nodes", "snapshots"):
            return getattr(home, top)
    return home.root / top


def _add(archive: tarfile.TarFile, relative: str, full: Path) -> dict[str, Any]:
    """Add one path; a regular file is read once, hashed while spooled, so the hash is of the archived bytes even
    if the file changes meanwhile."""
    info = full.lstat()
    member = tarfile.TarInfo(PREFIX + relative)
    member.mtime, member.mode = int(info.st_mtime), stat.S_IMODE(info.st_mode) & 0o777
    if stat.S_ISLNK(info.st_mode):
        member.type, member.linkname = tarfile.SYMTYPE, os.readlink(full)
        archive.addfile(member)
        return {"path": relative, "type": "symlink", "target": member.linkname}
    if stat.S_ISDIR(info.st_mode):
        member.type = tarfile.DIRTYPE
        archive.addfile(member)
        return {"path": relative, "type": "dir", "mode": member.mode}
    with open(full, "rb") as source, tempfile.SpooledTemporaryFile(max_size=8 * _CHUNK) as spool:
        digest, size = _copy_hashing(source, spool)
        spool.seek(0)
        member.size = size
        archive.addfile(member, spool)
    return {"path": relative, "type": "file", "size": size, "sha256": digest, "mode": member.mode}


def _add_database(archive: tarfile.TarFile, home: Home, scratch: Path, entries: list[dict[str, Any]]) -> bool:
    if not home.state_db.is_file():
        return False
    copy = scratch / DB_NAME
    try:
        source = sqlite3.connect(home.state_db, timeout=30)
        try:
            target = sqlite3.connect(copy)
            try:
                source.backup(target)  # one consistent snapshot; concurrent writers (WAL) keep going
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {home.state_db} with SQLite's backup API: {exc}") from exc
    entries.append(_add(archive, DB_NAME, copy))
    return True


def _copy_hashing(source: IO[bytes], target: IO[bytes] | None) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := source.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if target is not None:
            target.write(chunk)
    return digest.hexdigest(), size


# --- verify and restore ------------------------------------------------------------------------------------

def verify_backup(archive: Path) -> dict[str, Any]:
    """Check an archive against its manifest without writing anything; returns the manifest, or raises."""
    with tempfile.TemporaryDirectory() as scratch:
        return _extract_verified(Path(archive), None, Path(scratch))


def restore_backup(archive: Path, home: Home) -> RestoreSummary:
    """Replace `home` with the archive's content, keeping the target's models, inputs, outputs and venvs.

    Stop a server using the home first: it would keep writing to the database file that is replaced.
    """
    archive = Path(archive)
    if getattr(home, "target", None) is not None:
        raise BackupError("restoring a backup into a ComfyUI install is not supported: it would replace the "
                          "install's custom_nodes wholesale", user_error=True,
                          hint="restore into a partyflow home (--home), or bring the packs back with "
                               "'partyflow --comfyui PATH snapshot restore'")
    if not archive.is_file():
        raise BackupError(f"{archive}: no such backup file", user_error=True)
    root = home.root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.with_name(f".{root.name}.restore-{uuid.uuid4().hex[:8]}")
    aside = root.with_name(f".{root.name}.replaced-{uuid.uuid4().hex[:8]}")
    try:
        staging.mkdir()
        manifest = _extract_verified(archive, staging, staging)
        _check_database(staging / DB_NAME)
        replaced = root.exists()
        if replaced:
            with operation_lock(ManagerPaths(home)):
                _swap(root, staging, aside)
        else:
            staging.rename(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    _reseal_audit(home)
    files = sum(1 for e in manifest["entries"] if e["type"] == "file")
    return RestoreSummary(root, files, str(manifest.get("created_at", "")), replaced, _missing_venvs(root))


def _reseal_audit(home: Home) -> None:
    """The audit log's signed head was made with the source machine's audit key, which stays behind like every
    key: sign the restored chain's end with this home's key (a broken chain stays marked broken)."""
    from partyflow.manager.audit import AuditLog

    if home.state_db.is_file():
        with AuditLog(home) as log:
            log.reseal()


def _swap(root: Path, staging: Path, aside: Path) -> None:
    """Carry the target's kept folders into the staged home, then two renames; undone if the second fails."""
    moved: list[str] = []
    try:
        for name in KEPT_FROM_TARGET:
            if os.path.lexists(root / name) and not os.path.lexists(staging / name):
                (root / name).rename(staging / name)
                moved.append(name)
        root.rename(aside)
        try:
            staging.rename(root)
        except BaseException:
            aside.rename(root)
            raise
    except BaseException:
        for name in moved:
            (staging / name).rename(root / name)
        raise


def _extract_verified(archive: Path, target: Path | None, scratch: Path) -> dict[str, Any]:
    """Read every member, write files under `target` (or only hash them), then hold them against the manifest."""
    seen: dict[str, dict[str, Any]] = {}
    manifest: dict[str, Any] | None = None
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name == MANIFEST and member.isfile():
                    manifest = _read_manifest(tar, member)
                    continue
                relative = _safe_relative(member.name)
                seen[relative] = _extract_member(tar, member, relative, target)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise BackupError(f"{archive}: the archive is truncated or corrupt ({type(exc).__name__}: {exc})",
                          user_error=True, hint="nothing was restored; use an intact copy of the backup") from None
    if manifest is None:
        raise BackupError(f"{archive}: the archive has no {MANIFEST} (truncated, or not a partyflow backup)",
                          user_error=True, hint="nothing was restored")
    _compare(manifest, seen, archive)
    return manifest


def _read_manifest(tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict[str, Any]:
    handle = tar.extractfile(member)
    assert handle is not None
    try:
        data = json.loads(handle.read(64 << 20))
    except ValueError as exc:
        raise BackupError(f"the backup's {MANIFEST} is not valid JSON ({exc})", user_error=True) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), list):
        raise BackupError(f"{MANIFEST} is not a partyflow backup manifest", user_error=True)
    if data.get("version") != FORMAT_VERSION:
        raise BackupError(f"backup format version {data.get('version')!r} is not supported (this partyflow reads "
                          f"version {FORMAT_VERSION})", user_error=True, hint="restore it with a newer partyflow")
    return data


def _safe_relative(name: str) -> str:
    """The member's path inside the home; refuses absolute paths, `..` and anything outside `home/`."""
    path = PurePosixPath(name)
    if not name.startswith(PREFIX) or path.is_absolute() or ".." in path.parts:
        raise BackupError(f"the archive contains an unsafe path {name!r}; refused (tampered archive?)",
                          user_error=True, hint="nothing was restored")
    relative = name[len(PREFIX):].rstrip("/")
    if not relative or relative.split("/")[0] not in (*INCLUDED, DB_NAME):
        raise BackupError(f"the archive contains {name!r}, which a partyflow backup never holds", user_error=True,
                          hint="nothing was restored")
    return relative


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, relative: str,
                    target: Path | None) -> dict[str, Any]:
    destination = target / relative if target is not None else None
    if destination is not None:
        _refuse_written_through_link(target, destination.parent, relative)
    if member.isdir():
        if destination is not None:
            destination.mkdir(parents=True, exist_ok=True)
            os.chmod(destination, (member.mode & 0o777) | 0o700)
        return {"type": "dir"}
    if member.issym():
        if _link_escapes(relative, member.linkname):
            raise BackupError(f"{relative}: a link pointing outside the home ({member.linkname!r}); refused",
                              user_error=True, hint="nothing was restored")
        if destination is not None:
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(member.linkname, destination)
            _refuse_written_through_link(target, destination, relative)  # a chain: `b -> ..`, `a -> b/..`
        return {"type": "symlink", "target": member.linkname}
    if not member.isfile():
        raise BackupError(f"{relative}: not a regular file, folder or link; refused", user_error=True)
    handle = tar.extractfile(member)
    assert handle is not None
    if destination is None:
        digest, size = _copy_hashing(handle, None)
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        with open(destination, "wb") as out:
            digest, size = _copy_hashing(handle, out)
        os.chmod(destination, member.mode & 0o777)
    return {"type": "file", "size": size, "sha256": digest}


def _refuse_written_through_link(target: Path, path: Path, relative: str) -> None:
    """Refuse a member whose real location (every link on the way followed) leaves the staging folder.

    `_link_escapes` checks one link's text; links that point through each other (`user/b -> ..`, then
    `user/a -> b/..`) only show where they lead once followed, and a later file member would be written there.
    """
    root = Path(os.path.realpath(target))
    real = Path(os.path.realpath(path))
    if real != root and root not in real.parents:
        raise BackupError(f"{relative}: would be written through a link pointing outside the home; refused",
                          user_error=True, hint="nothing was restored")


def _compare(manifest: dict[str, Any], seen: dict[str, dict[str, Any]], archive: Path) -> None:
    listed = {str(e.get("path")): e for e in manifest["entries"] if isinstance(e, dict)}
    problems: list[str] = []
    for path, entry in listed.items():
        got = seen.get(path)
        if got is None:
            problems.append(f"{path} is listed in the manifest but missing from the archive")
        elif got["type"] != entry.get("type"):
            problems.append(f"{path} is a {got['type']} in the archive but a {entry.get('type')} in the manifest")
        elif got["type"] == "file" and (got["sha256"] != entry.get("sha256") or got["size"] != entry.get("size")):
            problems.append(f"{path} does not match its sha256 in the manifest (changed after the backup was made)")
        elif got["type"] == "symlink" and got["target"] != entry.get("target"):
            problems.append(f"{path} points somewhere else than the manifest says")
    problems += [f"{path} is in the archive but not in the manifest" for path in seen if path not in listed]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise BackupError(f"{archive}: the archive does not match its manifest: {'; '.join(problems[:3])}{more}",
                          user_error=True, hint="nothing was restored; the archive was tampered with or damaged")


def _check_database(path: Path) -> None:
    if not path.is_file():
        return
    try:
        conn = sqlite3.connect(path)
        try:
            (verdict,) = conn.execute("PRAGMA quick_check").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        verdict = str(exc)
    if verdict != "ok":
        raise BackupError(f"the backed-up database does not pass SQLite's check: {verdict}", user_error=True,
                          hint="nothing was restored")


def _missing_venvs(root: Path) -> tuple[str, ...]:
    """Isolated packs (issue 6, item 8) whose environment is not in the restored home: they need a reinstall."""
    from partyflow.nodes.isolation.loading import isolated_pack_names

    return tuple(sorted(n for n in isolated_pack_names(Home(root)) if not (root / "venvs" / n).is_dir()))
