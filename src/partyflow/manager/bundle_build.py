"""`bundle create --catalog`: build one signed offline bundle from a build catalog, resumably.

The result is the ordinary bundle format (`bundles.py`): `bundle install` on the air-gapped side needs nothing new.
What is new is how the inputs are gathered:

* every catalog entry is fetched (archive, git, Comfy Registry, or the entry's local `offline_path` copy), its
  sha256 checked, its scan held to the entry's `security_level`, and the result kept in a build cache next to the
  output (`DIR/.partyflow-build/`), keyed by what the entry pins (for a git branch, the commit it points at now);
* wheels come from `pip download --only-binary=:all: --platform TAG --python-version X.Y --implementation cp`, run
  once per target platform, so the wheelhouse holds wheels this build machine could never install itself (a
  Windows or macOS target built on Linux), and a multi-platform bundle carries each platform's own wheels.

A rerun after an interruption (a killed CI job, a lost connection) reuses every pack whose cached zip still has the
sha256 it was recorded with and every wheel already downloaded whose hash still matches its record; anything else
is fetched again. The bundle itself is written to a temporary file in the output folder and renamed into place,
so the output path never holds half a bundle. Bad input (the catalog, a bad URL, a wrong hash, a dependency with no
wheel for a target platform) is a `BundleError` naming the entry, raised before the bundle file is written.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from partyflow.config import Home
from partyflow.manager.bundle_catalog import BuildCatalog, BuildEntry, load_build_catalog
from partyflow.manager.bundles import (
    BundleError,
    OpenedBundle,
    PackItem,
    Progress,
    Target,
    WheelItem,
    pack_item,
    signing_key,
    write_signed,
)
from partyflow.manager.errors import ManagerError
from partyflow.manager.keys import Keyring
from partyflow.manager.provenance import atomic_write_json
from partyflow.manager.signing import canonical_json
from partyflow.manager.sources import SourceSpec, fetch
from partyflow.manager.staging import checkpoint

__all__ = ["BuildResult", "CACHE_DIR", "build_from_catalog", "bundle_filename"]

CACHE_DIR = ".partyflow-build"
_PYTHON = re.compile(r"^3\.\d{1,2}$")
_PLATFORM = re.compile(r"^[a-z0-9_]{2,80}$")
_PIP_SAVED = re.compile(r"^\s*(?:Saved|File was already downloaded)\s+(.+\.whl)\s*$")
_PIP_MISSING = (re.compile(r"No matching distribution found for ([^\s;]+)"),
                re.compile(r"Could not find a version that satisfies the requirement ([^\s;]+)"))
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
PIP_TIMEOUT = 1800


def _quiet(message: str) -> None:
    """Default progress sink."""


@dataclass
class BuildResult:
    """The bundle written, and what the build reused from an earlier, interrupted or finished, run."""

    bundle: OpenedBundle
    packs_fetched: list[str] = field(default_factory=list)
    packs_reused: list[str] = field(default_factory=list)
    wheels_downloaded: list[str] = field(default_factory=list)
    wheels_reused: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle.path), **self.bundle.summary(),
                "build": {"packs_fetched": self.packs_fetched, "packs_reused": self.packs_reused,
                          "wheels_downloaded": self.wheels_downloaded, "wheels_reused": self.wheels_reused}}


def bundle_filename(catalog: BuildCatalog, platforms: Sequence[str], python: str) -> str:
    """`<catalog>-py<X.Y>-<platform>[+<platform>...].pfb`: one file per target, side by side in one folder."""
    return f"{catalog.name}-py{python}-{'+'.join(platforms)}.pfb"


def build_from_catalog(home: Home, catalog_path: Path | str, out_dir: Path | str, *, platforms: Sequence[str],
                       python: str, implementation: str = "cp", key: str | None = None, unsigned: bool = False,
                       sequence: int | None = None, index_url: str | None = None, find_links: Sequence[str] = (),
                       progress: Progress = _quiet) -> BuildResult:
    """Fetch every catalog pack and every wheel its requirements need on each target platform, then sign and
    write `<out_dir>/<bundle_filename>`. Raises BundleError (naming the entry) before writing it."""
    catalog = load_build_catalog(catalog_path)
    platforms = _check_target(platforms, python, implementation)
    keyring = Keyring(home)
    signer, sequence = signing_key(keyring, key, unsigned, sequence)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BundleError("usage", f"--out {out} is a file; give a folder for the bundle")
    cache = out / CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    output = out / bundle_filename(catalog, platforms, python)
    target = Target(tuple(platforms), python, implementation)
    with _build_lock(cache):
        for stale in out.glob(f".{output.name}.*"):  # a temporary bundle of a killed run: never a result
            stale.unlink(missing_ok=True)
        result_items: list[PackItem] = []
        members: dict[str, Path] = {}
        fetched: list[str] = []
        reused: list[str] = []
        for entry in catalog.entries:
            item, path, was_cached = _pack(home, entry, cache, progress)
            result_items.append(item)
            members[item.member] = path
            (reused if was_cached else fetched).append(entry.name)
            checkpoint(f"bundle-build-pack-{entry.name}")
        wheels, downloaded, kept = _wheels(home, catalog, result_items, target, cache, index_url, find_links,
                                           progress)
        for wheel, path in wheels:
            members[wheel.member] = path
        opened = write_signed(keyring, signer, sequence, output, target, result_items, [w for w, _ in wheels],
                              members, (), progress)
    return BuildResult(opened, fetched, reused, downloaded, kept)


def _check_target(platforms: Sequence[str], python: str, implementation: str) -> list[str]:
    tags = list(dict.fromkeys(p.strip().lower().replace("-", "_").replace(".", "_") for p in platforms
                              if p.strip()))
    if not tags:
        raise BundleError("usage", "give the target with --platform (e.g. manylinux2014_x86_64, win_amd64, "
                          "macosx_11_0_arm64); repeat it for several")
    for tag in tags:
        if not _PLATFORM.match(tag):
            raise BundleError("usage", f"--platform {tag!r} is not a pip platform tag",
                              hint="for example manylinux2014_x86_64, win_amd64 or macosx_11_0_arm64")
    if not _PYTHON.match(python or ""):
        raise BundleError("usage", f"--python-version {python!r} is not a Python version like 3.11")
    if implementation not in ("cp", "pp", "py"):
        raise BundleError("usage", f"implementation {implementation!r}: use cp, pp or py")
    return tags


@contextlib.contextmanager
def _build_lock(cache: Path) -> Iterator[None]:
    with open(cache / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BundleError("busy", f"another bundle build is using {cache.parent}; wait for it to finish",
                              user_error=False) from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# ---- packs -------------------------------------------------------------------------------------------------

def _pack(home: Home, entry: BuildEntry, cache: Path, progress: Progress) -> tuple[PackItem, Path, bool]:
    """The entry's pack zip from the cache when it is still the one recorded, else fetched, checked and cached."""
    key = _entry_key(entry)
    folder = cache / "packs" / key
    record = _read_record(folder / "item.json")
    if record is not None:
        path = folder / record["file"]
        if path.is_file() and _sha256(path) == record["sha256"]:
            progress(f"{entry.name}: reusing the verified copy from an earlier build")
            return _item_from_record(record), path, True
    progress(f"fetching {entry.name} from {entry.source}")
    shutil.rmtree(folder, ignore_errors=True)
    scratch = cache / "tmp" / uuid.uuid4().hex[:12]
    scratch.mkdir(parents=True)
    try:
        fetched = _fetch(home, entry, scratch / "fetch")
        _scan(home, entry, fetched)
        members: dict[str, Path] = {}
        item = pack_item(fetched, entry.name, entry.version, entry.source, scratch / "work", members)
        own = list(item.requirements)
        item = replace(item, source=entry.source, requirements=tuple(dict.fromkeys([*own, *entry.dependencies])),
                       host_version=entry.host_version,
                       security_level=entry.security_level.value if entry.security_level else None)
        built = members[item.member]
        staged = scratch / "done"
        staged.mkdir()
        os.replace(built, staged / built.name)
        record = {"file": built.name, "sha256": _sha256(staged / built.name), "entry": entry.fingerprint(),
                  "item": _item_to_record(item)}
        atomic_write_json(staged / "item.json", record)
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, folder)  # the cache entry appears whole or not at all
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return item, folder / record["file"], False


def _entry_key(entry: BuildEntry) -> str:
    """What the cached copy must match: the entry's pins, and for a git ref the commit it names right now."""
    pinned = dict(entry.fingerprint())
    if entry.kind == "git" and entry.offline_path is None and not _COMMIT.match(entry.version or ""):
        pinned["commit"] = _remote_commit(entry)
    return hashlib.sha256(canonical_json(pinned)).hexdigest()[:32]


def _remote_commit(entry: BuildEntry) -> str:
    """`git ls-remote` the entry's ref: a bad URL or a ref that does not exist fails here, before any fetch."""
    url = entry.source[len("git+"):]
    ref = entry.version or "HEAD"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "",
           "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")}
    try:
        done = subprocess.run(["git", "ls-remote", "--", url, ref, f"{ref}^{{}}"], capture_output=True, text=True,
                              timeout=120, check=False, stdin=subprocess.DEVNULL, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BundleError("source", f"{entry.label}: cannot reach {url} ({exc})", user_error=False) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BundleError("source", f"{entry.label}: bad URL {entry.source}: git cannot read it ({last})")
    lines = sorted(line for line in done.stdout.splitlines() if line.strip())
    if not lines:
        raise BundleError("source", f"{entry.label}: {url} has no branch or tag {ref!r}",
                          hint="fix 'version', or pin a commit")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _fetch(home: Home, entry: BuildEntry, workdir: Path) -> Path:
    workdir.mkdir(parents=True)
    spec = entry.spec()
    try:
        if entry.kind == "registry" and entry.offline_path is None:
            from partyflow.manager.registry import RegistryClient

            info = RegistryClient.for_home(home).install_info(entry.source[len("registry:"):], entry.version)
            url = info.download_url
            spec = SourceSpec("url", url, entry.version, entry.sha256, entry.name)
        return fetch(spec, workdir).path
    except ManagerError as exc:
        mismatch = "sha256 mismatch" in exc.message
        raise BundleError("hash mismatch" if mismatch else "source", f"{entry.label}: {exc.message}",
                          hint=exc.hint or ("fix the catalog's sha256, or find out why the file changed"
                                            if mismatch else None),
                          user_error=mismatch or exc.user_error) from None


def _scan(home: Home, entry: BuildEntry, pack: Path) -> None:
    """Hold the pack to the security level its entry requires (the scan part of the policy: the bundle's own
    signature will vouch for it later, so an unsigned source is not refused here)."""
    if entry.security_level is None:
        return
    from partyflow.security.policy import Caller, SecurityPolicy
    from partyflow.security.scanner import scan

    report = scan(pack, home=home)
    decision = SecurityPolicy(entry.security_level).scan(report, Caller(trusted=True))
    if not decision.allowed:
        raise BundleError("security", f"{entry.label}: its scan fails security level {entry.security_level.value}: "
                          f"{decision.reason}", hint="run 'partyflow scan' on the pack to see the findings")


def _item_to_record(item: PackItem) -> dict[str, Any]:
    return {"name": item.name, "member": item.member, "content_hash": item.content_hash, "version": item.version,
            "source": item.source, "requirements": list(item.requirements), "host_version": item.host_version,
            "security_level": item.security_level}


def _item_from_record(record: dict[str, Any]) -> PackItem:
    raw = record["item"]
    return PackItem(raw["name"], raw["member"], raw["content_hash"], raw.get("version"), raw.get("source", ""),
                    tuple(raw.get("requirements", ())), raw.get("host_version"), raw.get("security_level"))


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and {"file", "sha256", "item"} <= set(data) else None
    except (OSError, ValueError):
        return None


# ---- wheels ------------------------------------------------------------------------------------------------

def _wheels(home: Home, catalog: BuildCatalog, items: Sequence[PackItem], target: Target, cache: Path,
            index_url: str | None, find_links: Sequence[str],
            progress: Progress) -> tuple[list[tuple[WheelItem, Path]], list[str], list[str]]:
    requirements = list(dict.fromkeys(r for item in items for r in item.requirements))
    if not requirements:
        return [], [], []
    needed_by = _needed_by(items)
    found: dict[str, Path] = {}
    downloaded: list[str] = []
    kept: list[str] = []
    for platform in target.platforms:
        dest = cache / "wheelhouse" / platform / f"py{target.python}-{target.implementation}"
        had = _verified_wheels(dest)
        progress(f"downloading wheels for {platform} / Python {target.python}")
        names = _pip_download(home, requirements, platform, target, dest, index_url, find_links, needed_by)
        _record_wheels(dest)
        for name in names:
            (kept if name in had else downloaded).append(name)
            found.setdefault(name, dest / name)
        checkpoint(f"bundle-build-wheels-{platform}")
    wheels = []
    for name, path in sorted(found.items()):
        dist, version, _, _ = parse_wheel_filename(name)
        wheels.append((WheelItem(f"wheelhouse/{name}", str(dist), str(version)), path))
    return wheels, sorted(set(downloaded)), sorted(set(kept))


def _needed_by(items: Sequence[PackItem]) -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for item in items:
        for req in item.requirements:
            try:
                name = canonicalize_name(Requirement(req).name)
            except InvalidRequirement:
                continue
            by.setdefault(name, []).append(item.name)
    return by


def _verified_wheels(dest: Path) -> set[str]:
    """Wheels of an earlier run that are still what was recorded; anything else there is deleted (a file that
    changed, or one an interrupted download left behind) so pip fetches it again."""
    if not dest.is_dir():
        dest.mkdir(parents=True)
        return set()
    record = _read_json(dest.parent / f"{dest.name}.json")
    good = set()
    for path in dest.iterdir():
        if path.is_file() and record.get(path.name) == _sha256(path):
            good.add(path.name)
        elif path.is_file() and path.suffix == ".whl" and _whole_zip(path):
            good.add(path.name)  # downloaded completely by a run killed before it recorded the hashes
        else:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return good


def _record_wheels(dest: Path) -> None:
    atomic_write_json(dest.parent / f"{dest.name}.json",
                      {p.name: _sha256(p) for p in sorted(dest.glob("*.whl"))})


def _whole_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


def _pip_download(home: Home, requirements: list[str], platform: str, target: Target, dest: Path,
                  index_url: str | None, find_links: Sequence[str], needed_by: dict[str, list[str]]) -> list[str]:
    """`pip download` for one platform; returns the wheel file names this resolution uses."""
    import importlib.util

    from partyflow.manager.dependencies import Installer

    if importlib.util.find_spec("pip") is None:
        raise BundleError("usage", "building a wheelhouse runs pip, which is not installed here",
                          hint="pip install pip", user_error=False)
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input", "--no-cache-dir",
            "--progress-bar", "off", "--dest", str(dest), "--only-binary=:all:", "--platform", platform,
            "--python-version", target.python, "--implementation", target.implementation]
    if index_url or find_links:  # exactly these sources: no pip.conf extra indexes, constraints or find-links
        argv += ["--isolated", *(["--index-url", index_url] if index_url else ["--no-index"])]
        argv += [a for link in find_links for a in ("--find-links", link)]
    else:
        argv += Installer.for_home(home).source_args(offline=False)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=dest.parent, delete=False) as reqs:
        reqs.write("\n".join(requirements) + "\n")
    try:
        done = subprocess.run([*argv, "--requirement", reqs.name], capture_output=True, text=True, check=False,
                              timeout=PIP_TIMEOUT, stdin=subprocess.DEVNULL,
                              env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    except subprocess.TimeoutExpired:
        raise BundleError("download", f"pip download for {platform} took longer than {PIP_TIMEOUT}s",
                          user_error=False) from None
    finally:
        Path(reqs.name).unlink(missing_ok=True)
    output = done.stdout + "\n" + done.stderr
    if done.returncode != 0:
        for pattern in _PIP_MISSING:
            match = pattern.search(output)
            if match:
                raise _no_wheel(match.group(1), platform, target, needed_by)
        tail = (done.stderr.strip() or done.stdout.strip())[-800:]
        raise BundleError("download", f"pip download for {platform} / Python {target.python} failed: {tail}",
                          hint="check --index-url / [manager] index_url and that the index is reachable",
                          user_error=False)
    names = list(dict.fromkeys(Path(m.group(1)).name for line in output.splitlines()
                               if (m := _PIP_SAVED.match(line))))
    covered = {canonicalize_name(parse_wheel_filename(n)[0]) for n in names if (dest / n).is_file()}
    if not names or not set(needed_by) <= covered:
        # pip's wording changed, or it said less than it used: every wheel of this platform's cache (a superset,
        # so the bundle still installs; an earlier catalog's leftovers may ride along)
        return sorted(p.name for p in dest.glob("*.whl"))
    return [n for n in names if (dest / n).is_file()]


def _no_wheel(requirement: str, platform: str, target: Target, needed_by: dict[str, list[str]]) -> BundleError:
    try:
        name = canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        name = canonicalize_name(re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0])
    owners = needed_by.get(name)
    who = (f"catalog entr{'ies' if len(owners) > 1 else 'y'} {', '.join(repr(o) for o in owners)}" if owners
           else "another dependency")
    return BundleError("no wheel", f"dependency {requirement} (needed by {who}) has no wheel for platform "
                       f"{platform} / Python {target.python} ({target.implementation}) on the index",
                       hint="publish a wheel for that platform, pin a version that has one, or drop the platform")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
