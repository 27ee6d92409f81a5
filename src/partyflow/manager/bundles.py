"""Offline bundles (`.pfb`): node packs plus every wheel they need for one platform, signed, for air gaps.

A bundle is a zip holding `manifest.json`, `manifest.sig`, `packs/<name>.zip` (or `<name>.py` for a one-file pack)
and `wheelhouse/*.whl`. The manifest lists the sha256 and size of every other member, the target platform tags
and Python version, when it was made and a sequence number that only goes up per signing key; the signature
covers the manifest, so it covers every byte of the bundle.

Installing reads nothing but the bundle: the signature is checked against the home's keyring first, then every
member is hashed while it is extracted (a member not in the manifest, or one whose hash differs, refuses the
whole bundle before anything changes), then the target interpreter must match the bundle's platform and Python,
and the sequence must not be older than the last bundle installed from the same signer (a replayed manifest).
Wheels install with `--no-index --find-links <the bundle's wheelhouse>`, so the resolver cannot reach an index;
packs install through `PackManager`, so each one is atomic and audited. Every step skips what is already in
place, which makes a second install a no-op and lets an interrupted one continue where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from partyflow.config import Home, resolve_home
from partyflow.manager.errors import ManagerError
from partyflow.manager.keys import KeyInfo, Keyring
from partyflow.manager.provenance import atomic_write_json, tree_hash
from partyflow.manager.signing import SignatureError, canonical_json, sign, verify
from partyflow.manager.sources import SourceSpec, default_name, fetch, spec_from_text, validate_pack_name
from partyflow.manager.staging import checkpoint

__all__ = [
    "BundleError", "BundleInstall", "BundlePlan", "Manifest", "OpenedBundle", "PackItem", "Target", "WheelItem",
    "audit_refusal", "check_host", "create_bundle", "install_bundle", "installed_bundles", "open_bundle",
    "pack_item", "plan_install", "signing_key", "verify_bundle", "write_signed",
]

FORMAT = "partyflow-bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MAX_MANIFEST = 16 << 20
_MEMBER = re.compile(r"^(packs|wheelhouse)/[A-Za-z0-9_][A-Za-z0-9_.+-]{0,200}$")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
Progress = Callable[[str], None]


class BundleError(ManagerError):
    """A bundle that was refused; `reason` is a short code (for example "hash mismatch", "replay",
    "wrong platform") and nothing was installed because of it."""

    def __init__(self, reason: str, message: str, *, hint: str | None = None, user_error: bool = True) -> None:
        self.reason = reason
        super().__init__(message, hint=hint, user_error=user_error)


def _quiet(message: str) -> None:
    """Default progress sink."""


# ---- the manifest ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """Where the bundle's wheels run: pip platform tags (or "any"), a Python version, an implementation."""

    platforms: tuple[str, ...]
    python: str
    implementation: str = "cp"


@dataclass(frozen=True)
class PackItem:
    name: str
    member: str                        # packs/<name>.zip or packs/<name>.py
    content_hash: str                  # provenance.tree_hash of the pack as it will be installed
    version: str | None = None
    source: str = ""                   # where the creator got it (a URL or a catalog name), for people
    requirements: tuple[str, ...] = ()
    host_version: str | None = None    # partyflow versions the pack runs on (a build catalog's host_version)
    security_level: str | None = None  # the level its scan passed when the bundle was built from a catalog


@dataclass(frozen=True)
class WheelItem:
    member: str
    name: str
    version: str


@dataclass(frozen=True)
class Manifest:
    created: str
    sequence: int
    signer: str | None                 # key id; None for an unsigned bundle
    signer_name: str | None
    target: Target
    packs: tuple[PackItem, ...]
    wheels: tuple[WheelItem, ...]
    files: Mapping[str, tuple[str, int]]   # member -> (sha256, size)
    constraints: tuple[str, ...] = ()

    @property
    def requirements(self) -> list[str]:
        return list(dict.fromkeys(r for p in self.packs for r in p.requirements))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "created": self.created, "sequence": self.sequence,
            "signer": self.signer, "signer_name": self.signer_name,
            "target": {"platforms": list(self.target.platforms), "python": self.target.python,
                       "implementation": self.target.implementation},
            "packs": [_pack_dict(p) for p in self.packs],
            "wheels": [{"member": w.member, "name": w.name, "version": w.version} for w in self.wheels],
            "files": {k: {"sha256": v[0], "size": v[1]} for k, v in sorted(self.files.items())},
            "constraints": list(self.constraints),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Parse and check a manifest's shape; any surprise is a refusal, not a traceback."""
        try:
            if data.get("format") != FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
            target = data["target"]
            files = {str(k): (str(v["sha256"]).lower(), int(v["size"])) for k, v in data["files"].items()}
            manifest = cls(
                created=str(data["created"]), sequence=int(data["sequence"]), signer=data.get("signer"),
                signer_name=data.get("signer_name"),
                target=Target(tuple(map(str, target["platforms"])), str(target["python"]),
                              str(target.get("implementation", "cp"))),
                packs=tuple(PackItem(str(p["name"]), str(p["member"]), str(p["content_hash"]), p.get("version"),
                                     str(p.get("source", "")), tuple(map(str, p.get("requirements", ()))),
                                     _opt_str(p.get("host_version")), _opt_str(p.get("security_level")))
                            for p in data["packs"]),
                wheels=tuple(WheelItem(str(w["member"]), str(w["name"]), str(w["version"]))
                             for w in data["wheels"]),
                files=files, constraints=tuple(map(str, data.get("constraints", ()))))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise BundleError("malformed manifest", f"the bundle's manifest is not valid: {exc}") from None
        for member in manifest.files:
            if not _MEMBER.match(member):
                raise BundleError("malformed manifest", f"the manifest lists an unsafe member name {member!r}")
        for pack in manifest.packs:
            validate_pack_name(pack.name)
            if pack.member not in manifest.files:
                raise BundleError("malformed manifest", f"pack {pack.name}: {pack.member} is not a listed file")
        for wheel in manifest.wheels:
            if wheel.member not in manifest.files or not wheel.member.endswith(".whl"):
                raise BundleError("malformed manifest", f"wheel {wheel.member} is not a listed .whl file")
        return manifest


def _pack_dict(p: PackItem) -> dict[str, Any]:
    """A pack's manifest entry; the catalog fields appear only when set, so older bundles read the same."""
    entry: dict[str, Any] = {"name": p.name, "member": p.member, "content_hash": p.content_hash,
                             "version": p.version, "source": p.source, "requirements": list(p.requirements)}
    if p.host_version is not None:
        entry["host_version"] = p.host_version
    if p.security_level is not None:
        entry["security_level"] = p.security_level
    return entry


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class OpenedBundle:
    """A bundle whose signature and (unless only inspected) member hashes were checked."""

    path: Path
    manifest: Manifest
    digest: str                        # sha256 of the canonical manifest: the bundle's identity
    signer: KeyInfo | None             # None: unsigned, or only inspected
    signature_problem: str | None = None   # set by inspect when the signature did not check out

    @property
    def signer_id(self) -> str | None:
        """The key id that verifiably signed this bundle; a manifest's own claim counts for nothing without it
        (else an unsigned copy could push a signer's sequence up and lock out their real bundles)."""
        return self.signer.key_id if self.signer is not None else None

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {"path": str(self.path), "digest": self.digest, "created": m.created, "sequence": m.sequence,
                "signer": {"key_id": m.signer, "name": self.signer.name if self.signer else m.signer_name,
                           "trusted": self.signer is not None},
                "signature_problem": self.signature_problem,
                "target": dataclasses.asdict(m.target),
                "packs": [{k: v for k, v in _pack_dict(p).items() if k != "member"} for p in m.packs],
                "wheels": [f"{w.name}=={w.version}" for w in m.wheels],
                "files": len(m.files), "bytes": sum(size for _, size in m.files.values())}


# ---- reading and verifying ---------------------------------------------------------------------------------

@contextlib.contextmanager
def _zip(path: Path) -> Iterator[zipfile.ZipFile]:
    if not path.is_file():
        raise BundleError("not a bundle", f"no such bundle: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            yield zf
    except _DAMAGED as exc:
        detail = str(exc) or type(exc).__name__
        raise BundleError("corrupt", f"{path.name}: not a bundle, or it is corrupt ({detail})",
                          hint="copy the bundle again; do not install it") from None


# What zipfile raises for damaged bytes besides BadZipFile (measured by flipping every byte of a bundle): a broken
# deflate stream, a stream cut short, a flipped compression method or version, a flipped encryption flag, a name
# that no longer decodes, a header that no longer unpacks.
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, UnicodeDecodeError,
            struct.error)


def _read_small(zf: zipfile.ZipFile, name: str) -> bytes | None:
    try:
        info = zf.getinfo(name)
    except KeyError:
        return None
    if info.file_size > MAX_MANIFEST:
        raise BundleError("corrupt", f"{name} is larger than {MAX_MANIFEST} bytes")
    try:
        return zf.read(info)
    except (OSError, ValueError, *_DAMAGED) as exc:
        raise BundleError("hash mismatch", f"{name}: damaged ({str(exc) or type(exc).__name__})",
                          hint="a byte of the bundle changed; do not install it") from None


def _open(zf: zipfile.ZipFile, path: Path, keyring: Keyring | None, allow_unsigned: bool,
          now: datetime | None) -> OpenedBundle:
    names = [i.filename for i in zf.infolist()]
    if len(names) != len(set(names)):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise BundleError("hash mismatch", f"{path.name}: members appear twice ({', '.join(dupes)[:200]}); "
                          "refusing an ambiguous bundle")
    raw = _read_small(zf, MANIFEST)
    if raw is None:
        raise BundleError("not a bundle", f"{path.name}: no {MANIFEST}; not a partyflow bundle")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError("corrupt", f"{path.name}: {MANIFEST} is not valid JSON ({exc}); the bundle was damaged "
                          "or tampered with", hint="do not install it") from None
    sig = _read_small(zf, SIGNATURE)
    signature = sig.decode("ascii", "replace").strip() if sig is not None else None
    signer: KeyInfo | None = None
    problem: str | None = None
    if keyring is not None and (signature or not allow_unsigned):
        try:
            signer = verify(keyring, "bundle", data, signature, what=f"bundle {path.name}", now=now).key
        except SignatureError as exc:
            raise BundleError(exc.reason.value, exc.message, hint=exc.hint) from None
    elif keyring is None:
        problem = "not checked"
    manifest = Manifest.from_dict(data)
    if signer is not None and manifest.signer != signer.key_id:
        raise BundleError("bad signature", f"{path.name}: the manifest names signer {manifest.signer}, but key "
                          f"{signer.key_id} signed it")
    digest = hashlib.sha256(canonical_json(data)).hexdigest()
    return OpenedBundle(path, manifest, digest, signer, problem)


def _check_members(zf: zipfile.ZipFile, opened: OpenedBundle, extract_to: Path | None) -> None:
    """Hash every member against the manifest (writing it under `extract_to` as it is read)."""
    manifest, label = opened.manifest, opened.path.name
    present = {i.filename for i in zf.infolist() if not i.is_dir()} - {MANIFEST, SIGNATURE}
    extra = sorted(present - set(manifest.files))
    if extra:
        raise BundleError("hash mismatch", f"{label}: {extra[0]} is in the bundle but not in its signed "
                          "manifest (a file was added or swapped)", hint="do not install it")
    for member, (expected, size) in sorted(manifest.files.items()):
        if member not in present:
            raise BundleError("hash mismatch", f"{label}: {member} is listed in the manifest but missing")
        digest = hashlib.sha256()
        written = 0
        target = extract_to.joinpath(*member.split("/")) if extract_to is not None else None
        try:
            with zf.open(member) as source, _sink(target) as out:
                while chunk := source.read(1 << 20):
                    written += len(chunk)
                    if written > size:
                        break
                    digest.update(chunk)
                    out.write(chunk)
        except (OSError, ValueError, *_DAMAGED) as exc:
            raise BundleError("hash mismatch", f"{label}: {member} is damaged ({str(exc) or type(exc).__name__})",
                              hint="a byte of the bundle changed; do not install it") from None
        if written != size or digest.hexdigest() != expected:
            raise BundleError("hash mismatch", f"{label}: {member} does not match the sha256 in the signed "
                              "manifest (the file was changed or swapped)", hint="do not install it")


@contextlib.contextmanager
def _sink(target: Path | None) -> Iterator[IO[bytes]]:
    if target is None:
        with open(os.devnull, "wb") as null:
            yield null
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as out:
        yield out


def open_bundle(path: Path | str, home: Home | None = None) -> OpenedBundle:
    """Read a bundle's manifest for inspection: the signature is checked when a home is given (a failure is
    reported in `signature_problem`, not raised), member hashes are not."""
    path = Path(path)
    with _zip(path) as zf:
        opened = _open(zf, path, None, True, None)
        if home is None:
            return opened
        try:
            checked = _open(zf, path, Keyring(home), False, None)
        except BundleError as exc:
            return dataclasses.replace(opened, signature_problem=exc.message)
        return dataclasses.replace(checked, signature_problem=None)


def verify_bundle(path: Path | str, home: Home | Path | str | None = None, *, allow_unsigned: bool = False,
                  now: datetime | None = None, extract_to: Path | None = None) -> OpenedBundle:
    """Check the signature against the home's keyring, then every member's sha256; raises BundleError."""
    path = Path(path)
    home = _home(home)
    with _zip(path) as zf:
        opened = _open(zf, path, Keyring(home), allow_unsigned, now)
        _check_members(zf, opened, extract_to)
    return opened


# ---- the target machine ------------------------------------------------------------------------------------

_PROBE = ("import json, platform, sys; print(json.dumps({'python': '%d.%d' % sys.version_info[:2], "
          "'platform': sys.platform, 'machine': platform.machine(), 'implementation': sys.implementation.name}))")
_PY_HERE = f"{sys.version_info.major}.{sys.version_info.minor}"
_ARCH = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "i686": "x86", "i386": "x86", "win32": "x86"}


def describe_interpreter(python: str) -> dict[str, str]:
    """Python version, OS, machine and implementation of the interpreter packs will run in."""
    if python == sys.executable:
        import platform

        return {"python": _PY_HERE, "platform": sys.platform, "machine": platform.machine(),
                "implementation": sys.implementation.name}
    done = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise BundleError("wrong python", f"cannot run the target interpreter {python}: "
                          f"{done.stderr.strip()[-300:]}", user_error=False)
    return json.loads(done.stdout)


def _platform_family(tag: str) -> tuple[str, str] | None:
    """(os, machine) a pip platform tag names; None for "any"."""
    tag = tag.lower().replace("-", "_").replace(".", "_")
    if tag == "any":
        return None
    if tag.startswith(("manylinux", "musllinux", "linux")):
        match = re.match(r"^(?:manylinux|musllinux)(?:_\d+_\d+|\d+)?_(.+)$|^linux_(.+)$", tag)
        arch = next((g for g in match.groups() if g), "") if match else ""
        return "linux", _ARCH.get(arch, arch)
    if tag.startswith("macosx"):
        arch = tag.rsplit("_", 1)[-1]
        return "darwin", _ARCH.get(arch, arch)
    if tag.startswith("win"):
        arch = tag.split("_", 1)[1] if "_" in tag else "x86"
        return "win32", _ARCH.get(arch, arch)
    return tag, ""


def _fits_platform(tag: str, where: Mapping[str, str]) -> bool:
    family = _platform_family(tag)
    if family is None:
        return True
    machine = where["machine"].lower()
    machine = _ARCH.get(machine, machine)
    os_name = "linux" if where["platform"].startswith("linux") else where["platform"]
    if family[0] == "darwin" and os_name == "darwin" and family[1] in ("universal2", "universal"):
        return True
    return family == (os_name, machine)


def _fits_python(tag_interpreter: str, tag_abi: str, version: str) -> bool:
    major, minor = (int(x) for x in version.split(".")[:2])
    match = re.match(r"^(py|cp)(\d)(\d*)$", tag_interpreter)
    if match is None:
        return False
    kind, want_major, want_minor = match.group(1), int(match.group(2)), match.group(3)
    if want_major != major:
        return False
    if not want_minor:
        return kind == "py"
    if kind == "cp" and tag_abi != "abi3":
        return int(want_minor) == minor
    return int(want_minor) <= minor


def check_target(manifest: Manifest, where: Mapping[str, str]) -> None:
    """Refuse a bundle made for another Python or platform, naming both, before anything is installed."""
    here = f"Python {where['python']} on {where['platform']} {where['machine']}"
    if manifest.target.python != where["python"]:
        raise BundleError("wrong python", f"the bundle was made for Python {manifest.target.python}; the target "
                          f"environment runs {here}", hint="create the bundle with --python " + where["python"])
    if not any(_fits_platform(tag, where) for tag in manifest.target.platforms):
        raise BundleError("wrong platform", f"the bundle was made for {', '.join(manifest.target.platforms)}; "
                          f"the target environment is {here}", hint="create the bundle with a --platform tag of "
                          "this machine (see 'python -m pip debug --verbose')")
    for wheel in manifest.wheels:
        filename = wheel.member.rsplit("/", 1)[-1]
        try:
            tags = parse_wheel_filename(filename)[3]
        except InvalidWheelFilename:
            raise BundleError("malformed manifest", f"{filename} is not a valid wheel file name") from None
        if any(_fits_python(t.interpreter, t.abi, where["python"]) and _fits_platform(t.platform, where)
               for t in tags):
            continue
        # a multi-platform bundle carries each platform's wheels; pip picks this machine's from the wheelhouse
        others = [p for p in manifest.target.platforms if not _fits_platform(p, where)]
        if not any(_fits_python(t.interpreter, t.abi, where["python"]) and _same_platform(t.platform, p)
                   for t in tags for p in others):
            raise BundleError("wrong platform", f"wheel {filename} does not run on {here}",
                              hint="create the bundle with this machine's --platform and --python")
    check_host(manifest)


def _same_platform(wheel_tag: str, target_tag: str) -> bool:
    """Whether a wheel's platform tag is one the bundle's target tag names (same OS and machine)."""
    family = _platform_family(wheel_tag)
    return family is None or family == _platform_family(target_tag)


def check_host(manifest: Manifest, version: str | None = None) -> None:
    """Refuse a bundle whose packs declare partyflow versions that exclude this one (a catalog's host_version)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    import partyflow

    here = version or partyflow.__version__
    for pack in manifest.packs:
        if not pack.host_version:
            continue
        try:
            fits = Version(here) in SpecifierSet(pack.host_version, prereleases=True)
        except (InvalidSpecifier, InvalidVersion):
            raise BundleError("malformed manifest", f"pack {pack.name}: host_version {pack.host_version!r} is not "
                              "a version specifier") from None
        if not fits:
            raise BundleError("wrong host", f"pack {pack.name} runs on partyflow {pack.host_version}; this is "
                              f"partyflow {here}", hint="upgrade partyflow here, or build the bundle from a "
                              "catalog entry for this version")


# ---- creating ----------------------------------------------------------------------------------------------

def default_platform() -> str:
    """The running machine's platform as pip names it: the newest manylinux (pip accepts older ones under it)."""
    from packaging import tags

    found = list(tags.platform_tags())
    return next((t for t in found if t.startswith(("manylinux_", "macosx_", "win"))), found[0] if found else "any")


def create_bundle(home: Home | Path | str | None, output: Path | str, *, packs: Sequence[str] = (),
                  snapshot: Path | str | None = None, platforms: Sequence[str] = (), python: str | None = None,
                  implementation: str = "cp", key: str | None = None, unsigned: bool = False,
                  sequence: int | None = None, progress: Progress = _quiet) -> OpenedBundle:
    """Fetch packs (catalog names, paths, archives, git URLs; or a snapshot's packs pinned as it recorded them),
    download every wheel their requirements need for the target into the bundle, sign and write it."""
    home = _home(home)
    output = Path(output)
    if bool(packs) == bool(snapshot):
        raise BundleError("usage", "give either packs or a snapshot")
    keyring = Keyring(home)
    signer, sequence = signing_key(keyring, key, unsigned, sequence)
    target = Target(tuple(platforms) or (default_platform(),), python or _PY_HERE,
                    implementation)
    specs, constraints = (_specs_from_snapshot(home, Path(snapshot)) if snapshot
                          else (_specs_from_names(home, packs), []))
    home.bundles.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home.bundles, prefix=".build-") as tmp:
        work = Path(tmp)
        members: dict[str, Path] = {}
        items = []
        for index, (name, spec, label) in enumerate(specs):
            progress(f"fetching {label}")
            (work / "fetch" / str(index)).mkdir(parents=True)
            fetched = fetch(dataclasses.replace(spec, name=name), work / "fetch" / str(index))
            items.append(pack_item(fetched.path, name, spec.version, label, work, members))
        requirements = list(dict.fromkeys(r for item in items for r in item.requirements))
        wheels = _download_wheels(home, requirements, constraints, target, work / "wheelhouse", progress)
        for wheel in wheels:
            members[wheel.member] = work / "wheelhouse" / wheel.member.split("/", 1)[1]
        return write_signed(keyring, signer, sequence, output, target, items, wheels, members, constraints,
                            progress)


def signing_key(keyring: Keyring, key: str | None, unsigned: bool,
                sequence: int | None) -> tuple[Any, int | None]:
    """The key that signs a new bundle (None: unsigned) and its sequence number, checked before any work."""
    signer = None if unsigned else keyring.signer(key)
    if signer is not None:
        last = keyring.last_sequence(signer.key_id)
        if sequence is not None and sequence <= last:
            raise BundleError("usage", f"sequence {sequence} is not above {last}, the last one key {signer.name} "
                              "signed; verifiers would refuse it as a replay", hint="leave --sequence out")
        sequence = sequence if sequence is not None else last + 1
    return signer, sequence


def write_signed(keyring: Keyring, signer: Any, sequence: int | None, output: Path, target: Target,
                 items: Sequence[PackItem], wheels: Sequence[WheelItem], members: Mapping[str, Path],
                 constraints: Sequence[str] = (), progress: Progress = _quiet) -> OpenedBundle:
    """Hash every member, write the manifest, sign it and write the bundle (to a temporary file, renamed into
    place, so `output` is either the old file or the whole new one)."""
    files = {m: (_sha256(p), p.stat().st_size) for m, p in members.items()}
    manifest = Manifest(created=datetime.now(UTC).isoformat(timespec="seconds"), sequence=sequence or 0,
                        signer=signer.key_id if signer else None, signer_name=signer.name if signer else None,
                        target=target, packs=tuple(items), wheels=tuple(wheels), files=files,
                        constraints=tuple(constraints))
    data = manifest.to_dict()
    progress(f"writing {output}")
    _write_bundle(output, data, sign(signer, "bundle", data) if signer else None, members)
    if signer is not None:
        keyring.note_sequence(signer.key_id, manifest.sequence)
    return OpenedBundle(output, manifest, hashlib.sha256(canonical_json(data)).hexdigest(),
                        keyring.get(signer.key_id) if signer else None)


def _specs_from_names(home: Home, names: Sequence[str]) -> list[tuple[str, SourceSpec, str]]:
    found = []
    for text in names:
        spec = spec_from_text(text)
        if spec is None:
            from partyflow.manager import catalog

            spec = catalog.resolve(text, home)
        name = spec.name or default_name(spec)  # the folder name `nodes install` would give it
        found.append((validate_pack_name(name), spec, text))
    _no_duplicates([n for n, _, _ in found])
    return found


def _specs_from_snapshot(home: Home, path: Path) -> tuple[list[tuple[str, SourceSpec, str]], list[str]]:
    """The snapshot's packs at their recorded commit or version; its Python pins become download constraints,
    so the bundle carries the versions the snapshot saw."""
    from partyflow.manager import snapshots

    snap = snapshots.load(snapshots.locate(home, str(path)))
    found = []
    for name, state in sorted(snap.packs.items()):
        if state.registry_id:
            from partyflow.manager.registry import RegistryClient

            info = RegistryClient.for_home(home).install_info(state.registry_id, state.version)
            spec = SourceSpec(kind="url", location=info.download_url, version=info.version, name=name)
        else:
            spec = state.install_spec()
        if spec is None:
            raise BundleError("usage", f"snapshot pack {name} has no recorded source (it was installed by hand)",
                              hint="install it with 'partyflow nodes install' and take a new snapshot")
        found.append((name, spec, spec.describe()))
    _no_duplicates([n for n, _, _ in found])
    return found, [f"{k}=={v}" for k, v in sorted(snap.python.items())
                   if k not in ("partyflow", "pip", "setuptools", "wheel", "uv")]


def _no_duplicates(names: list[str]) -> None:
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise BundleError("usage", f"packs named twice: {', '.join(sorted(seen))}")


def pack_item(path: Path, name: str, version: str | None, label: str, work: Path,
              members: dict[str, Path]) -> PackItem:
    """A fetched pack as a bundle member: a reproducible zip under `work/packs/` (or the one .py file), hashed as
    PackManager will see it once unpacked; `members` gets the member's file."""
    from partyflow.manager.archives import extract_archive
    from partyflow.manager.dependencies import read_requirements

    if path.is_file():
        member = f"packs/{name}.py"
        members[member] = path
        return PackItem(name, member, tree_hash(path), version, label)
    requirements, _ = read_requirements(path)
    version = version or _declared_version(path)
    archive = work / "packs" / f"{name}.zip"
    _zip_folder(path, archive, name)
    check = work / "check" / name
    extract_archive(archive, check)  # hash the pack as PackManager will see it after unpacking
    member = f"packs/{name}.zip"
    members[member] = archive
    return PackItem(name, member, tree_hash(check / name), version, label, tuple(requirements))


def _declared_version(pack: Path) -> str | None:
    """The version a pack's pyproject.toml declares (registry packs have one), for catalogs made from bundles."""
    import tomllib

    try:
        version = tomllib.loads((pack / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    return str(version) if isinstance(version, str | int | float) else None


def _zip_folder(folder: Path, archive: Path, name: str) -> None:
    """A reproducible zip of a pack under `<name>/`: sorted, fixed times, modes kept, links as links."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    entries: list[tuple[str, Path]] = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in (".git", "__pycache__"))
        base = Path(current)
        entries += [(f"{(base / d).relative_to(folder).as_posix()}/", base / d) for d in dirs]
        entries += [((base / f).relative_to(folder).as_posix(), base / f) for f in files if not f.endswith(".pyc")]
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_info(f"{name}/", 0o40755), b"")
        for relative, full in sorted(entries):
            mode = full.lstat().st_mode
            if stat.S_ISLNK(mode):
                zf.writestr(_info(f"{name}/{relative}", 0o120777), os.readlink(full).encode())
            elif relative.endswith("/"):
                zf.writestr(_info(f"{name}/{relative}", 0o40755), b"")
            else:
                zf.writestr(_info(f"{name}/{relative}", 0o100000 | (0o755 if mode & 0o111 else 0o644)),
                            full.read_bytes(), zipfile.ZIP_DEFLATED)


def _info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, _ZIP_EPOCH)
    info.external_attr = mode << 16
    info.create_system = 3
    return info


def _download_wheels(home: Home, requirements: list[str], constraints: list[str], target: Target, dest: Path,
                     progress: Progress) -> list[WheelItem]:
    """`pip download --only-binary=:all: --platform ... --python-version ...` from the home's configured
    sources ([manager] index_url, find_links, no_index and the wheelhouse/)."""
    dest.mkdir(parents=True, exist_ok=True)
    if not requirements:
        return []
    import importlib.util

    from partyflow.manager.dependencies import Installer

    if importlib.util.find_spec("pip") is None:
        raise BundleError("usage", "creating a bundle downloads wheels with pip, which is not installed here",
                          hint="pip install pip", user_error=False)
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet", "--dest", str(dest),
            "--only-binary=:all:", "--python-version", target.python, "--implementation", target.implementation]
    for platform in target.platforms:
        argv += ["--platform", platform]
    argv += Installer.for_home(home).source_args(offline=False)
    if constraints:
        pins = dest.parent / "constraints.txt"
        pins.write_text("\n".join(constraints) + "\n", encoding="utf-8")
        argv += ["--constraint", str(pins)]
    progress(f"downloading wheels for {len(requirements)} requirement(s)")
    done = subprocess.run([*argv, *requirements], capture_output=True, text=True, check=False, timeout=1800,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip())[-800:]
        raise BundleError("download", f"cannot download wheels for {', '.join(requirements)}: {tail}",
                          hint="check [manager] index_url/find_links, and that every requirement has a wheel for "
                               f"{', '.join(target.platforms)} / Python {target.python}", user_error=False)
    wheels = []
    for path in sorted(dest.glob("*.whl")):
        name, version, _, _ = parse_wheel_filename(path.name)
        wheels.append(WheelItem(f"wheelhouse/{path.name}", str(name), str(version)))
    return wheels


def _write_bundle(output: Path, manifest: dict[str, Any], signature: str | None, members: Mapping[str, Path]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(temp, "w") as zf:
            zf.writestr(_info(MANIFEST, 0o100644), json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                        zipfile.ZIP_DEFLATED)
            if signature is not None:
                zf.writestr(_info(SIGNATURE, 0o100644), signature + "\n")
            for member, path in sorted(members.items()):
                zf.write(path, member, zipfile.ZIP_STORED)  # archives and wheels are compressed already
        os.replace(temp, output)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---- installing --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PackAction:
    name: str
    action: str                        # install | replace | unchanged
    detail: str = ""


@dataclass(frozen=True)
class BundlePlan:
    bundle: OpenedBundle
    packs: tuple[PackAction, ...]
    requirements: tuple[str, ...]
    requirements_satisfied: bool
    security: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per pack: signature, scan, decision

    @property
    def changes(self) -> bool:
        return not self.requirements_satisfied or any(p.action != "unchanged" for p in self.packs)

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle.summary(), "packs": [dataclasses.asdict(p) for p in self.packs],
                "requirements": list(self.requirements), "requirements_satisfied": self.requirements_satisfied,
                "security": {k: dict(v) for k, v in self.security.items()}}


@dataclass
class BundleInstall:
    """What an install did; `changed` is false for a bundle that was already in place."""

    digest: str
    signer: str | None
    sequence: int
    packs: list[PackAction] = field(default_factory=list)
    python_installed: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.python_installed) or any(p.action != "unchanged" for p in self.packs)

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "signer": self.signer, "sequence": self.sequence, "changed": self.changed,
                "packs": [dataclasses.asdict(p) for p in self.packs], "python_installed": self.python_installed}


def _state_file(home: Home) -> Path:
    return home.bundles / "state.json"


def _load_state(home: Home) -> dict[str, Any]:
    path = _state_file(home)
    if not path.exists():
        return {"signers": {}, "bundles": {}}
    data = json.loads(path.read_text(encoding="utf-8"))
    data.setdefault("signers", {})
    data.setdefault("bundles", {})
    return data


def installed_bundles(home: Home | Path | str | None = None) -> dict[str, Any]:
    """The bundles this home installed (by manifest digest: signer, sequence, packs, status) and the last
    sequence seen per signer: provenance for reports."""
    return _load_state(_home(home))


@contextlib.contextmanager
def _bundle_lock(home: Home) -> Iterator[None]:
    """One bundle install per home at a time (PackManager's own lock is taken per pack inside)."""
    home.bundles.mkdir(parents=True, exist_ok=True)
    with open(home.bundles / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _check_replay(state: Mapping[str, Any], opened: OpenedBundle) -> None:
    signer = opened.signer_id
    if signer is None:
        return
    last = state["signers"].get(signer)
    if last is None:
        return
    seq = opened.manifest.sequence
    if seq < int(last["sequence"]):
        raise BundleError("replay", f"bundle sequence {seq} from signer {opened.manifest.signer_name or signer} is "
                          f"older than sequence {last['sequence']} already installed here; refusing a replayed "
                          "older manifest", hint="install the newer bundle from this signer")
    if seq == int(last["sequence"]) and last.get("digest") != opened.digest:
        raise BundleError("replay", f"signer {opened.manifest.signer_name or signer} already installed a different "
                          f"bundle with sequence {seq}; one sequence number must name one bundle",
                          hint="ask the signer for a bundle with a new sequence number")


def _pack_actions(home: Home, manifest: Manifest) -> list[PackAction]:
    from partyflow.manager.packs import PackManager

    installed = {p.name: p for p in PackManager(home).installed()}
    actions = []
    for item in manifest.packs:
        have = installed.get(item.name)
        if have is None:
            actions.append(PackAction(item.name, "install", item.version or ""))
        elif tree_hash(have.path) == item.content_hash:
            actions.append(PackAction(item.name, "unchanged", "already installed"))
        elif have.record is None:
            raise BundleError("conflict", f"a pack named {item.name!r} was put in {have.path} by hand; the bundle "
                              "will not replace it", hint=f"uninstall it first: partyflow nodes uninstall {item.name}")
        else:
            was = have.record.version or have.record.content_hash[:19]
            actions.append(PackAction(item.name, "replace", f"{was} -> {item.version or item.content_hash[:19]}"))
    return actions


def plan_install(path: Path | str, home: Home | Path | str | None = None, *, allow_unsigned: bool = False,
                 security_level: str | None = None, force: bool = False, manager: Any = None) -> BundlePlan:
    """Everything `install_bundle` checks (the security policy and the scan of every pack included), and what it
    would change, without changing anything."""
    from partyflow.manager.bundle_gate import check_bundle
    from partyflow.manager.dependencies import already_satisfied, target_python
    from partyflow.manager.packs import PackManager

    home = _home(home)
    pm = manager if manager is not None else PackManager(home, security_level=security_level)
    work = home.bundles / ".work" / uuid.uuid4().hex[:16]
    try:
        opened = verify_bundle(path, home, allow_unsigned=allow_unsigned, extract_to=work)
        python = target_python(home)
        check_target(opened.manifest, describe_interpreter(python))
        _check_replay(_load_state(home), opened)
        security = check_bundle(opened, work, home=home, policy=pm.policy(), caller=pm.caller(), force=force)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reqs = opened.manifest.requirements
    return BundlePlan(opened, tuple(_pack_actions(home, opened.manifest)), tuple(reqs),
                      not reqs or already_satisfied(reqs, python), security)


def audit_refusal(home: Home | Path | str | None, path: Path | str, exc: ManagerError, *, actor: str | None = None,
                  opened: OpenedBundle | None = None, action: str = "bundle-install") -> None:
    """Record a refused or failed bundle install (also one refused while only planning, before asking the user),
    or, with `action="bundle-verify"`, a bundle that failed verification."""
    from partyflow.manager.audit import AuditLog

    with AuditLog(_home(home)) as audit:
        audit.record(action, result="refused" if exc.user_error else "failed",
                     pack=exc.pack, source=str(path), error=str(exc), actor=actor,
                     details={"reason": getattr(exc, "reason", None), "digest": opened.digest if opened else None,
                              **(getattr(exc, "details", None) or {})})


def install_bundle(path: Path | str, home: Home | Path | str | None = None, *, allow_unsigned: bool = False,
                   allow_conflicts: bool = False, skip_install_script: bool = False, progress: Progress = _quiet,
                   actor: str | None = None, manager: Any = None, security_level: str | None = None,
                   force: bool = False) -> BundleInstall:
    """Verify, then install a bundle with no network: wheels from its wheelhouse only, packs through
    PackManager. The security policy judges the whole bundle (signature, sources, a scan of every pack) before
    anything changes. Refusals and failures are audited too; a refusal leaves the home untouched."""
    from partyflow.manager.audit import AuditLog
    from partyflow.manager.packs import PackManager

    home = _home(home)
    path = Path(path)
    pm = manager if manager is not None else PackManager(home, actor=actor, security_level=security_level)
    with _bundle_lock(home):
        work = home.bundles / ".work" / uuid.uuid4().hex[:16]
        opened: OpenedBundle | None = None
        try:
            progress(f"verifying {path.name}")
            opened = verify_bundle(path, home, allow_unsigned=allow_unsigned, extract_to=work)
            result = _install_verified(home, opened, work, pm, allow_conflicts, skip_install_script, progress,
                                       force)
        except ManagerError as exc:
            audit_refusal(home, path, exc, actor=actor, opened=opened)
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        with AuditLog(home) as audit:
            audit.record("bundle-install", result="ok" if result.changed else "unchanged", source=str(path),
                         version=str(opened.manifest.sequence), actor=actor, content_hash=f"sha256:{opened.digest}",
                         details={**result.to_dict(), "signer_name": opened.signer.name if opened.signer else None})
    return result


def _install_verified(home: Home, opened: OpenedBundle, work: Path, pm: Any, allow_conflicts: bool,
                      skip_install_script: bool, progress: Progress, force: bool = False) -> BundleInstall:
    from partyflow.manager import catalog
    from partyflow.manager.bundle_gate import bundle_trust, check_bundle
    from partyflow.manager.dependencies import target_python

    manifest = opened.manifest
    python = target_python(home)
    check_target(manifest, describe_interpreter(python))
    state = _load_state(home)
    _check_replay(state, opened)
    actions = _pack_actions(home, manifest)
    progress("checking the bundle against the security policy and scanning its packs")
    check_bundle(opened, work, home=home, policy=pm.policy(), caller=pm.caller(), force=force)
    trust = bundle_trust(opened)
    result = BundleInstall(opened.digest, opened.signer_id, manifest.sequence)
    entry = state["bundles"].get(opened.digest, {})
    state["bundles"][opened.digest] = {
        **entry, "status": "installed" if entry.get("status") == "installed" else "installing",
        "file": str(opened.path), "signer": opened.signer_id,
        "signer_name": opened.signer.name if opened.signer else None,
        "sequence": manifest.sequence, "created": manifest.created,
        "started": entry.get("started") or datetime.now(UTC).isoformat(timespec="seconds"),
        "packs": {p.name: {"version": p.version, "content_hash": p.content_hash} for p in manifest.packs}}
    if opened.signer_id is not None:
        last = state["signers"].get(opened.signer_id, {})
        if manifest.sequence >= int(last.get("sequence", -1)):
            state["signers"][opened.signer_id] = {"sequence": manifest.sequence, "digest": opened.digest}
    atomic_write_json(_state_file(home), state)  # from here an older bundle of this signer is a replay

    reqs = manifest.requirements
    if reqs:
        progress(f"installing {len(reqs)} requirement(s) from the bundle's wheelhouse (no index)")
        result.python_installed = _install_wheels(home, reqs, manifest.constraints, work / "wheelhouse",
                                                  python, allow_conflicts)
    by_name = {p.name: p for p in manifest.packs}
    for action in actions:
        item = by_name[action.name]
        if action.action != "unchanged":
            progress(f"{action.action} {item.name}")
            spec = _cached_spec(catalog.archive_cache(home), work, item)
            pm.install(spec, name=item.name, allow_conflicts=allow_conflicts,
                       skip_install_script=skip_install_script, force=force, origin=trust.origin,
                       signature=trust.signature, replace=action.action == "replace")  # one journaled swap
        result.packs.append(action)
        checkpoint(f"bundle-pack-{item.name}")
    state = _load_state(home)
    state["bundles"][opened.digest] = {**state["bundles"].get(opened.digest, {}), "status": "installed",
                                       "finished": datetime.now(UTC).isoformat(timespec="seconds")}
    atomic_write_json(_state_file(home), state)
    return result


def _cached_spec(cache: Path, work: Path, item: PackItem) -> SourceSpec:
    """Move the verified pack file into the archive cache (named by its sha256, so the record's source stays
    valid after this install's work folder is gone), and the spec that installs it from there."""
    source = work.joinpath(*item.member.split("/"))
    digest = _sha256(source)
    suffix = ".py" if item.member.endswith(".py") else ".zip"
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / (f"{digest}{suffix}" if suffix == ".zip" else f"{digest}/{item.name}.py")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
    if suffix == ".py":
        return SourceSpec(kind="dir", location=str(target), version=item.version, name=item.name)
    return SourceSpec(kind="archive", location=str(target), version=item.version, sha256=digest, name=item.name)


def _install_wheels(home: Home, requirements: list[str], constraints: Sequence[str], wheelhouse: Path,
                    python: str, allow_conflicts: bool) -> dict[str, str]:
    """Install requirements from the bundle's wheels only (`--no-index --find-links`), with the same conflict
    check as any pack install; the packs then find them satisfied and their own installs resolve nothing."""
    from partyflow.manager import dependencies as deps

    if deps.already_satisfied(requirements, python):
        return {}
    installer = dataclasses.replace(deps.Installer.for_home(home, python), find_links=(str(wheelhouse),),
                                    no_index=True, index_url=None)
    args = [*requirements]
    if constraints:  # a snapshot's pins: the resolver picks the versions the bundle was made with
        constraint_file = wheelhouse.parent / "constraints.txt"
        constraint_file.write_text("\n".join(constraints) + "\n", encoding="utf-8")
        args = ["--constraint", str(constraint_file), *args]
    before = deps.installed_packages(python)
    plan, _ = installer.plan(args)
    conflicts = deps.find_conflicts(plan, before, deps.protected_packages(home))
    if conflicts and not allow_conflicts:
        raise deps.DependencyConflict("bundle", conflicts)
    installer.install(args, offline=True)
    after = deps.installed_packages(python)
    return {n: v for n, v in after.items() if before.get(n) != v}


def _home(home: Home | Path | str | None) -> Home:
    return home if isinstance(home, Home) else Home(resolve_home(home))
