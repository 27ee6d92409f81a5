"""Unpack zip and tar archives from untrusted sources without letting them write outside the target.

Every member is checked by us instead of trusting `extractall`: no absolute paths, no `..` escapes, no devices,
hard links only to earlier members, symbolic links only to places inside the pack (checked after all links exist,
because a later link can change where an earlier one points), and limits on the number of members and on the bytes
actually written (counted while writing, so a lying header cannot bypass them).
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from partyflow.manager.errors import ManagerError

__all__ = ["ArchiveError", "ArchiveLimits", "archive_format", "extract_archive"]

CHUNK = 1 << 16


class ArchiveError(ManagerError):
    """An archive that is corrupt, unsafe or too large; nothing of it is kept."""


@dataclass(frozen=True)
class ArchiveLimits:
    max_bytes: int = 1 << 30       # uncompressed bytes written
    max_files: int = 50_000        # members


@dataclass(frozen=True)
class _Member:
    name: PurePosixPath
    kind: str                      # file | dir | symlink | hardlink
    mode: int
    link: str = ""
    source: object = None          # the ZipInfo or TarInfo to read a file's bytes from


def archive_format(path: Path) -> str | None:
    """'zip', 'tar' or None, from the content (not the suffix: downloads are often misnamed)."""
    try:
        if zipfile.is_zipfile(path):
            return "zip"
        if tarfile.is_tarfile(path):
            return "tar"
    except (OSError, EOFError, tarfile.TarError, zlib.error):  # a damaged compressed stream
        return None
    return None


def extract_archive(archive: Path, dest: Path, limits: ArchiveLimits = ArchiveLimits()) -> None:
    """Extract `archive` into the empty or missing folder `dest`; raises ArchiveError and removes `dest` on failure."""
    kind = archive_format(archive)
    if kind is None:
        raise ArchiveError(f"{archive.name}: not a zip or tar archive, or it is corrupt",
                           hint="download it again, or check that the URL points at an archive")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                _extract(_zip_members(zf), lambda m: zf.open(m.source), dest, limits, archive.name)
        else:
            with tarfile.open(archive) as tf:
                _extract(_tar_members(tf), lambda m: _tar_reader(tf, m.source, archive.name),
                         dest, limits, archive.name)
    except ArchiveError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise ArchiveError(f"{archive.name}: corrupt archive ({exc})", hint="download it again") from exc
    except OSError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise ArchiveError(f"{archive.name}: cannot extract ({exc})") from exc


# --- reading members -----------------------------------------------------------------------------------------

def _zip_members(zf: zipfile.ZipFile) -> Iterator[_Member]:
    for info in zf.infolist():
        name = PurePosixPath(_clean_name(info.filename, zf.filename or "zip"))
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            yield _Member(name, "symlink", 0o777, zf.read(info).decode("utf-8", "replace"))
        elif info.is_dir():
            yield _Member(name, "dir", 0o755)
        else:
            yield _Member(name, "file", mode & 0o777 or 0o644, source=info)


def _tar_members(tf: tarfile.TarFile) -> Iterator[_Member]:
    for info in tf:
        name = PurePosixPath(_clean_name(info.name, tf.name or "tar"))
        if info.isdir():
            yield _Member(name, "dir", 0o755)
        elif info.isfile():
            yield _Member(name, "file", info.mode & 0o777, source=info)
        elif info.issym():
            yield _Member(name, "symlink", 0o777, info.linkname)
        elif info.islnk():
            yield _Member(name, "hardlink", 0, _clean_name(info.linkname, str(tf.name)))
        else:
            raise ArchiveError(f"{Path(str(tf.name)).name}: member {info.name!r} is a device or fifo; refused")


def _tar_reader(tf: tarfile.TarFile, info: tarfile.TarInfo, label: str) -> IO[bytes]:
    reader = tf.extractfile(info)
    if reader is None:
        raise ArchiveError(f"{label}: cannot read member {info.name!r}")
    return reader


def _clean_name(raw: str, label: str) -> str:
    """The member's relative path, or ArchiveError for absolute paths and `..` escapes (zip-slip)."""
    name = raw.replace("\\", "/")
    label = Path(label).name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"{label}: member {raw!r} has an absolute path; refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{label}: member {raw!r} leaves the archive's folder (zip-slip); refused")
    if not parts:
        return "."
    return "/".join(parts)


# --- writing -------------------------------------------------------------------------------------------------

def _extract(members: Iterator[_Member], open_member, dest: Path, limits: ArchiveLimits, label: str) -> None:
    root = dest.resolve()
    written = 0
    links: list[_Member] = []
    count = 0
    seen: dict[PurePosixPath, str] = {}
    for member in members:
        count += 1
        if count > limits.max_files:
            raise ArchiveError(f"{label}: more than {limits.max_files} members; refused as too large")
        if str(member.name) == ".":
            continue
        if member.name in seen and not (member.kind == seen[member.name] == "dir"):
            raise ArchiveError(f"{label}: member {str(member.name)!r} appears twice; refused")
        seen[member.name] = member.kind
        target = root.joinpath(*member.name.parts)
        if member.kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
        elif member.kind == "file":
            target.parent.mkdir(parents=True, exist_ok=True)
            with open_member(member) as source, open(target, "xb") as out:
                while chunk := source.read(CHUNK):
                    written += len(chunk)
                    if written > limits.max_bytes:
                        raise ArchiveError(f"{label}: unpacks to more than {limits.max_bytes} bytes; "
                                           "refused as too large")
                    out.write(chunk)
            os.chmod(target, (member.mode | 0o600) & 0o755)
        else:
            links.append(member)
    _make_links(links, root, label, limits, written)


def _make_links(links: list[_Member], root: Path, label: str, limits: ArchiveLimits, written: int) -> None:
    """Hard links first (copies made while no symbolic link exists yet), then symbolic links; each one's folder
    must really lie inside the pack, so a link made earlier (`d -> ..`) cannot carry a later member's write out."""
    symlinks: list[Path] = []
    for member in sorted(links, key=lambda m: m.kind != "hardlink"):
        target = root.joinpath(*member.name.parts)
        _refuse_outside(root, target.parent, member, label)
        target.parent.mkdir(parents=True, exist_ok=True)
        if member.kind == "hardlink":
            source = root.joinpath(*PurePosixPath(member.link).parts)
            _refuse_outside(root, source, member, label)
            if not source.is_file() or source.is_symlink():
                raise ArchiveError(f"{label}: hard link {str(member.name)!r} points to {member.link!r}, "
                                   "which is not a file of this archive; refused")
            written += source.stat().st_size
            if written > limits.max_bytes:
                raise ArchiveError(f"{label}: unpacks to more than {limits.max_bytes} bytes; refused as too large")
            shutil.copyfile(source, target)  # a copy, never a link: the pack must not share inodes
        else:
            if os.path.isabs(member.link):
                raise ArchiveError(f"{label}: symbolic link {str(member.name)!r} -> {member.link!r} is absolute; "
                                   "refused")
            os.symlink(member.link, target)
            symlinks.append(target)
    for link in symlinks:  # all links exist now, so chains resolve as they will on disk
        resolved = Path(os.path.realpath(link))
        if resolved != root and root not in resolved.parents:
            raise ArchiveError(f"{label}: symbolic link {link.relative_to(root)} points outside the pack; refused")


def _refuse_outside(root: Path, path: Path, member: _Member, label: str) -> None:
    """ArchiveError unless `path`, with every symbolic link on the way followed, stays inside `root`."""
    real = Path(os.path.realpath(path))
    if real != root and root not in real.parents:
        raise ArchiveError(f"{label}: {member.kind} {str(member.name)!r} would be written through a link "
                           "that points outside the pack; refused")
