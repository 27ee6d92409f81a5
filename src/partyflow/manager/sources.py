"""Where a pack comes from (`SourceSpec`) and bringing it into a staging folder (`fetch`).

`SourceSpec` is the contract between whoever names a pack (the CLI's argument, a catalog entry, the Comfy Registry)
and the code that installs it: catalog code turns a name into a spec, and everything after that is the same for
every origin. `fetch` only ever writes inside the staging folder it is given; activation is the caller's job.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from partyflow.manager import gitsource
from partyflow.manager.archives import ArchiveError, ArchiveLimits, extract_archive
from partyflow.manager.errors import ManagerError

__all__ = [
    "FetchedPack",
    "Progress",
    "SourceError",
    "SourceKind",
    "SourceSpec",
    "default_name",
    "fetch",
    "spec_from_text",
    "split_version",
    "validate_pack_name",
    "with_version",
]

SourceKind = Literal["dir", "archive", "git", "url"]
KINDS: tuple[str, ...] = ("dir", "archive", "git", "url")
ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip")
DOWNLOAD_TIMEOUT = 60.0
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}$")
_URL = re.compile(r"^(https?|git|ssh|file)://", re.IGNORECASE)
_SCP_GIT = re.compile(r"^[\w.-]+@[\w.-]+:[^/].*")  # git@github.com:owner/repo.git

Progress = Callable[[str, int | None, int | None], None]
"""progress(message, done, total): a step message, with byte counts while downloading (total None if unknown)."""


def _no_progress(message: str, done: int | None = None, total: int | None = None) -> None:
    """Default: nobody is watching."""


class SourceError(ManagerError):
    """A source that cannot be read: missing, unreachable, corrupt, or not matching its checksum."""


@dataclass(frozen=True)
class SourceSpec:
    """Where to get a pack.

    kind: ``dir`` a local folder or single ``.py`` file (copied); ``archive`` a local zip or tar(.gz|.bz2|.xz) file;
        ``git`` a repository URL or local path (cloned with the git CLI); ``url`` an http(s) URL of an archive or of a
        single ``.py`` file (downloaded, then treated as ``archive``).
    location: the path or URL.
    version: for ``git`` a tag, branch or commit (None: the default branch); for the others a label recorded in the
        provenance (for example a registry version).
    sha256: the expected hex digest of the archive or downloaded file; a mismatch refuses the install. Not valid for
        ``dir`` and ``git``.
    name: the pack's folder name under custom_nodes (None: derived from the location, see `default_name`).
    """

    kind: SourceKind
    location: str
    version: str | None = None
    sha256: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"SourceSpec.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceSpec:
        return cls(**{key: data.get(key) for key in ("kind", "location", "version", "sha256", "name")})

    def describe(self) -> str:
        return f"{self.location}@{self.version}" if self.version else self.location


@dataclass(frozen=True)
class FetchedPack:
    """A pack brought into staging: `path` is `<workdir>/<name>` (a folder) or `<workdir>/<name>.py`."""

    path: Path
    name: str
    spec: SourceSpec
    commit: str | None = None       # git: the checked-out commit
    ref_kind: str | None = None     # git: branch | tag | commit
    archive_sha256: str | None = None
    ref: str | None = None          # git: the branch or tag checked out, or the commit as asked for

    @property
    def version(self) -> str | None:
        """The version to record: the git ref (None for a bare HEAD), else the spec's label."""
        if self.spec.kind == "git":
            return None if self.ref in (None, "HEAD") else self.ref
        return self.spec.version


# --- naming a source -----------------------------------------------------------------------------------------

def split_version(text: str) -> tuple[str, str | None]:
    """`thing@VERSION` -> (thing, VERSION). An '@' followed by '/' or ':' belongs to a URL (user@host), not a version."""
    base, at, version = text.rpartition("@")
    if not at or not base or not version or "/" in version or ":" in version or base.endswith(("://", "/")):
        return text, None
    return base, version


def spec_from_text(text: str, *, name: str | None = None, cwd: Path | None = None,
                   bare_names_are_paths: bool = True) -> SourceSpec | None:
    """The spec for a path or URL argument (with an optional @VERSION), or None when `text` is a plain name.

    A path that exists as written wins over reading a trailing '@...' as a version. `bare_names_are_paths=False`
    (remote callers) never reads a plain name as a folder that happens to exist in the working directory.
    """
    cwd = cwd or Path.cwd()
    whole = _local(text, cwd, bare_names_are_paths)
    if whole is not None and whole.exists():
        return _local_spec(whole, None, name)
    base, version = split_version(text)
    if _URL.match(base) or _SCP_GIT.match(base):
        return _url_spec(base, version, name)
    path = _local(base, cwd, bare_names_are_paths)
    if path is None:
        return None
    if not path.exists():
        raise SourceError(f"no such file or folder: {path}", user_error=True)
    return _local_spec(path, version, name)


def _local(text: str, cwd: Path, bare_names_are_paths: bool = True) -> Path | None:
    looks_like_path = (os.sep in text or text.startswith((".", "~")) or text.endswith((".py", *ARCHIVE_SUFFIXES))
                       or (bare_names_are_paths and (cwd / text).exists()))
    return (cwd / Path(text).expanduser()).absolute() if looks_like_path else None


def _url_spec(url: str, version: str | None, name: str | None) -> SourceSpec:
    if url.lower().startswith("file://"):
        path = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
        if path.is_dir():
            return SourceSpec("git", url, version, None, name)
        return _local_spec(path, version, name)
    path = urllib.parse.urlparse(url).path.lower() if _URL.match(url) else ""
    if url.lower().startswith(("http://", "https://")) and path.endswith((*ARCHIVE_SUFFIXES, ".py")):
        return SourceSpec("url", url, version, None, name)
    return SourceSpec("git", url, version, None, name)


def _local_spec(path: Path, version: str | None, name: str | None) -> SourceSpec:
    if path.is_dir():
        bare = (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()
        if bare or (version is not None and (path / ".git").exists()):
            return SourceSpec("git", str(path), version, None, name)
        if version is not None:
            raise SourceError(f"{path} is a plain folder; @{version} only applies to git repositories",
                              user_error=True)
        return SourceSpec("dir", str(path), None, None, name)
    if path.suffix == ".py":
        return SourceSpec("dir", str(path), version, None, name)
    return SourceSpec("archive", str(path), version, None, name)


def default_name(spec: SourceSpec) -> str:
    """The folder name a pack gets: the spec's name, else the last part of its location minus .git/.py/archive."""
    if spec.name:
        return validate_pack_name(spec.name)
    if _SCP_GIT.match(spec.location):
        last = spec.location.rsplit(":", 1)[1]
    elif _URL.match(spec.location):
        last = urllib.parse.unquote(urllib.parse.urlparse(spec.location).path)
    else:
        last = spec.location
    last = last.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".git", ".py", *ARCHIVE_SUFFIXES):
        if last.lower().endswith(suffix):
            last = last[: -len(suffix)]
            break
    return validate_pack_name(last)


def validate_pack_name(name: str) -> str:
    """A name that is one safe folder under custom_nodes: no separators, no leading dot, no `.disabled` suffix."""
    if not _NAME.match(name) or name.endswith(".disabled") or name in ("__pycache__", "..", "."):
        raise ManagerError(f"{name!r} is not a usable pack name", user_error=True,
                           hint="letters, digits and _ . + - only, not starting with a dot; pass --name to choose one")
    return name


# --- fetching ------------------------------------------------------------------------------------------------

def fetch(spec: SourceSpec, workdir: Path, *, limits: ArchiveLimits = ArchiveLimits(),
          progress: Progress = _no_progress) -> FetchedPack:
    """Bring the pack `spec` names into the existing folder `workdir` (nothing is written elsewhere)."""
    name = default_name(spec)
    if spec.sha256 and spec.kind in ("dir", "git"):
        raise SourceError(f"a sha256 only applies to archives, not to a {spec.kind} source", user_error=True)
    if spec.kind == "git":
        progress(f"cloning {spec.describe()}", None, None)
        dest = workdir / name
        revision = gitsource.clone(spec.location, dest, spec.version)
        return FetchedPack(dest, name, spec, revision.commit, revision.kind, ref=revision.ref)
    if spec.kind == "dir":
        return _copy_local(spec, Path(spec.location), workdir, name, progress)
    if spec.kind == "url":
        download = _download(spec.location, workdir / ".download", limits, progress)
        if urllib.parse.urlparse(spec.location).path.lower().endswith(".py"):
            digest = _check_sha256(download, spec)
            dest = workdir / f"{name}.py"
            os.replace(download, dest)
            return FetchedPack(dest, name, spec, archive_sha256=digest)
        try:
            return _unpack(spec, download, workdir, name, limits, progress)
        finally:
            download.unlink(missing_ok=True)
    archive = Path(spec.location)
    if not archive.is_file():
        raise SourceError(f"no such archive: {archive}", user_error=True)
    return _unpack(spec, archive, workdir, name, limits, progress)


def _copy_local(spec: SourceSpec, source: Path, workdir: Path, name: str, progress: Progress) -> FetchedPack:
    if not source.exists():
        raise SourceError(f"no such file or folder: {source}", user_error=True)
    progress(f"copying {source}", None, None)
    if source.is_file():
        dest = workdir / f"{name}.py"
        shutil.copyfile(source, dest)
        return FetchedPack(dest, name, spec)
    dest = workdir / name
    shutil.copytree(source, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _refuse_escaping_links(dest, str(source))
    return FetchedPack(dest, name, spec)


def _refuse_escaping_links(root: Path, label: str) -> None:
    real_root = root.resolve()
    for folder, dirs, files in os.walk(root):
        for entry in (*dirs, *files):
            path = Path(folder, entry)
            if path.is_symlink():
                target = Path(os.path.realpath(path))
                if target != real_root and real_root not in target.parents:
                    raise SourceError(f"{label}: symbolic link {path.relative_to(root)} points outside the pack; "
                                      "refused")


def _unpack(spec: SourceSpec, archive: Path, workdir: Path, name: str, limits: ArchiveLimits,
            progress: Progress) -> FetchedPack:
    digest = _check_sha256(archive, spec)
    progress(f"unpacking {archive.name}", None, None)
    extracted = workdir / ".extract"
    extract_archive(archive, extracted, limits)
    entries = list(extracted.iterdir())
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink() else extracted
    dest = workdir / name
    os.replace(root, dest)
    if extracted.exists():
        shutil.rmtree(extracted)
    return FetchedPack(dest, name, spec, archive_sha256=digest)


def _check_sha256(path: Path, spec: SourceSpec) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    actual = digest.hexdigest()
    if spec.sha256 and spec.sha256.lower() != actual:
        raise SourceError(f"{Path(spec.location).name}: sha256 mismatch (expected {spec.sha256.lower()}, got {actual})",
                          hint="the file changed or was tampered with; do not install it")
    return actual


def _download(url: str, dest: Path, limits: ArchiveLimits, progress: Progress) -> Path:
    """Stream `url` to `dest`, refusing more than `limits.max_bytes` (a pack archive is never that large)."""
    request = urllib.request.Request(url, headers={"User-Agent": "partyflow-manager"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            while chunk := response.read(1 << 16):
                done += len(chunk)
                if done > limits.max_bytes:
                    raise ArchiveError(f"{url}: larger than {limits.max_bytes} bytes; refused")
                out.write(chunk)
                progress(f"downloading {url}", done, total)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise SourceError(f"cannot download {url}: {getattr(exc, 'reason', exc)}",
                          hint="check the URL and your network, or install from a local archive") from exc
    return dest


def with_version(spec: SourceSpec, version: str | None) -> SourceSpec:
    """The same source at another version (None keeps the spec's own)."""
    return spec if version is None else replace(spec, version=version)
