"""Snapshots: the packs of a home (source, version or commit, enabled state, content hash) and the Python packages
installed, saved as JSON so a setup can be compared, shared and restored on another machine.

Restore goes through `PackManager` operations, so each step is atomic and audited like a user's command. Python
packages are pinned first in one resolver run: the packs installed after them then find their requirements
already satisfied. ComfyUI-Manager's snapshot JSON (and YAML) is read too, so its users can bring theirs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from partyflow.config import Home
from partyflow.manager.errors import ManagerError
from partyflow.manager.provenance import atomic_write_json, tree_hash
from partyflow.manager.sources import SourceSpec

FORMAT = "partyflow-snapshot/1"
_NEVER_PIN = frozenset({"partyflow", "pip", "setuptools", "wheel", "uv"})  # the host and the installers


class SnapshotError(ManagerError):
    """A snapshot that cannot be read, found or fully restored."""


@dataclass(frozen=True)
class PackState:
    """One pack as a snapshot records it."""

    name: str
    enabled: bool = True
    source: SourceSpec | None = None          # None: put there by hand; restorable only if still present
    version: str | None = None
    commit: str | None = None
    content_hash: str | None = None
    single_file: bool = False
    registry_id: str | None = None            # Comfy Registry packs from a ComfyUI-Manager snapshot

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "enabled": self.enabled,
                "source": self.source.to_dict() if self.source else None, "version": self.version,
                "commit": self.commit, "content_hash": self.content_hash, "single_file": self.single_file,
                "registry_id": self.registry_id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PackState:
        source = data.get("source")
        return cls(name=str(data["name"]), enabled=bool(data.get("enabled", True)),
                   source=SourceSpec.from_dict(source) if source else None, version=data.get("version"),
                   commit=data.get("commit"), content_hash=data.get("content_hash"),
                   single_file=bool(data.get("single_file", False)), registry_id=data.get("registry_id"))

    def install_spec(self) -> SourceSpec | None:
        """The source pinned to what the snapshot saw: the commit for git, the version label otherwise."""
        if self.source is None:
            return None
        pin = self.commit if self.source.kind == "git" and self.commit else self.source.version
        return replace(self.source, version=pin, name=self.name)


@dataclass(frozen=True)
class Snapshot:
    packs: Mapping[str, PackState]
    python: Mapping[str, str]                 # canonical name -> version
    created: str = ""
    origin: str = "partyflow"                 # or "comfyui-manager"
    comfyui: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "created": self.created, "origin": self.origin, "comfyui": self.comfyui,
                "packs": [p.to_dict() for _, p in sorted(self.packs.items())],
                "python": dict(sorted(self.python.items()))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        """Our format, or ComfyUI-Manager's (recognised by its `git_custom_nodes`/`cnr_custom_nodes` keys); a
        ComfyUI-Manager file that partyflow wrote carries ours under `partyflow`, which is preferred."""
        if isinstance(data.get("partyflow"), Mapping) and data["partyflow"].get("format") == FORMAT:
            data = data["partyflow"]
        if data.get("format") == FORMAT:
            packs = {p["name"]: PackState.from_dict(p) for p in data.get("packs", [])}
            return cls(packs=packs, python=dict(data.get("python", {})), created=str(data.get("created", "")),
                       origin=str(data.get("origin", "partyflow")), comfyui=data.get("comfyui"))
        if isinstance(data.get("custom_nodes"), Mapping):  # ComfyUI-Manager's YAML wraps the snapshot
            data = data["custom_nodes"]
        if any(k in data for k in ("git_custom_nodes", "cnr_custom_nodes", "file_custom_nodes")):
            return _from_comfyui_manager(data)
        raise SnapshotError("not a snapshot: expected partyflow's format or ComfyUI-Manager's "
                            "(git_custom_nodes, cnr_custom_nodes, file_custom_nodes, pips)", user_error=True)


@dataclass(frozen=True)
class PackChange:
    name: str
    what: str                                  # added | removed | changed | enabled | disabled
    before: PackState | None
    after: PackState | None

    def describe(self) -> str:
        if self.what == "changed" and self.before and self.after:
            fields = [f for f in ("source", "version", "commit", "content_hash")
                      if getattr(self.before, f) != getattr(self.after, f)]
            return f"{self.name}: changed ({', '.join(fields)})"
        return f"{self.name}: {self.what}"


@dataclass(frozen=True)
class SnapshotDiff:
    packs: tuple[PackChange, ...]
    python_added: Mapping[str, str]
    python_removed: Mapping[str, str]
    python_changed: Mapping[str, tuple[str, str]]

    @property
    def empty(self) -> bool:
        return not (self.packs or self.python_added or self.python_removed or self.python_changed)

    def to_dict(self) -> dict[str, Any]:
        return {"packs": [{"name": c.name, "change": c.what, "summary": c.describe()} for c in self.packs],
                "python": {"added": dict(self.python_added), "removed": dict(self.python_removed),
                           "changed": {k: list(v) for k, v in self.python_changed.items()}}}


@dataclass
class RestoreResult:
    actions: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)      # what could not be brought to the snapshot's state
    python_installed: dict[str, str] = field(default_factory=dict)
    python_kept: dict[str, str] = field(default_factory=dict)  # protected packages left at their version

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "actions": self.actions, "problems": self.problems,
                "python_installed": self.python_installed, "python_kept": self.python_kept}


# ---- capture, save, load -----------------------------------------------------------------------------------

def capture(home: Home, *, python: str | None | bool = True) -> Snapshot:
    """The home's current state; Python packages of `python` (True: the home's target interpreter; None or
    False: leave them out)."""
    from partyflow.manager.dependencies import installed_packages, target_python
    from partyflow.manager.packs import PackManager

    packs = {}
    for pack in PackManager(home).installed():
        record = pack.record
        packs[pack.name] = PackState(
            name=pack.name, enabled=pack.enabled, source=record.source if record else None,
            version=record.version if record else None, commit=record.commit if record else None,
            content_hash=tree_hash(pack.path), single_file=pack.single_file)
    python_pkgs = installed_packages(target_python(home, python if isinstance(python, str) else None)) \
        if python else {}
    return Snapshot(packs=packs, python=python_pkgs, created=datetime.now(UTC).isoformat(timespec="seconds"))


def save(home: Home, name: str | None = None, *, python: str | None | bool = True) -> Path:
    """Capture and write `<home>/snapshots/<name>.json` (default name: the UTC time)."""
    snapshot = capture(home, python=python)
    name = name or snapshot.created.replace(":", "-").replace("+00-00", "Z")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise SnapshotError(f"{name!r} is not a usable snapshot name", user_error=True,
                            hint="letters, digits and . _ - only")
    path = home.snapshots / f"{name}.json"
    atomic_write_json(path, _document(home, snapshot, bool(python)))
    return path


def _document(home: Home, snapshot: Snapshot, with_python: bool) -> dict[str, Any]:
    """Our format; for a ComfyUI target, ComfyUI-Manager's, with ours under its `partyflow` key (both tools read
    the same file from ComfyUI-Manager's snapshot folder)."""
    target = getattr(home, "target", None)
    if target is None:
        return snapshot.to_dict()
    from partyflow.manager.comfyui_manager_compat import snapshot_document
    from partyflow.manager.dependencies import installed_packages, target_python
    from partyflow.manager.packs import PackManager

    pips = (dict(snapshot.python) or installed_packages(target_python(home))) if with_python else {}
    return snapshot_document(snapshot, PackManager(home).installed(), pips, target.root)


def list_snapshots(home: Home) -> list[Path]:
    if not home.snapshots.is_dir():
        return []
    return sorted(p for p in home.snapshots.iterdir() if p.suffix in (".json", ".yaml", ".yml") and p.is_file())


def locate(home: Home, name_or_path: str) -> Path:
    """A snapshot by name (in the home's snapshots/) or by path."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    for suffix in ("", ".json", ".yaml", ".yml"):
        candidate = home.snapshots / f"{name_or_path}{suffix}"
        if candidate.is_file() and candidate.parent == home.snapshots:
            return candidate
    known = ", ".join(p.stem for p in list_snapshots(home)[-5:]) or "none saved yet"
    raise SnapshotError(f"no snapshot {name_or_path!r}", hint=f"recent: {known}", user_error=True)


def load(path: Path) -> Snapshot:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml  # ComfyUI-Manager writes YAML snapshots too; PyYAML is optional for us

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ImportError:
        raise SnapshotError(f"{path}: reading YAML snapshots needs PyYAML (pip install pyyaml)") from None
    except Exception as exc:  # noqa: BLE001 - any parse error is the same problem for the user
        raise SnapshotError(f"{path}: cannot be parsed ({exc})", user_error=True) from None
    if not isinstance(data, Mapping):
        raise SnapshotError(f"{path}: not a snapshot object", user_error=True)
    return Snapshot.from_dict(data)


# ---- diff and restore --------------------------------------------------------------------------------------

def diff(before: Snapshot, after: Snapshot) -> SnapshotDiff:
    changes: list[PackChange] = []
    for name in sorted(set(before.packs) | set(after.packs)):
        old, new = before.packs.get(name), after.packs.get(name)
        if old is None:
            changes.append(PackChange(name, "added", None, new))
        elif new is None and after.origin == "comfyui-manager":  # restore disables what such a file leaves out
            if old.enabled:
                changes.append(PackChange(name, "disabled", old, replace(old, enabled=False)))
        elif new is None:
            changes.append(PackChange(name, "removed", old, None))
        else:
            if _content_differs(old, new):
                changes.append(PackChange(name, "changed", old, new))
            if old.enabled != new.enabled:
                changes.append(PackChange(name, "enabled" if new.enabled else "disabled", old, new))
    added = {k: v for k, v in after.python.items() if k not in before.python}
    removed = {k: v for k, v in before.python.items() if k not in after.python}
    changed = {k: (before.python[k], v) for k, v in after.python.items()
               if k in before.python and before.python[k] != v}
    return SnapshotDiff(tuple(changes), added, removed, changed)


def restore(snapshot: Snapshot, home: Home, *, python: str | None | bool = True, allow_conflicts: bool = False,
            manager: Any = None) -> RestoreResult:
    """Bring the home to the snapshot: Python packages pinned (protected ones only with `allow_conflicts`),
    packs removed, installed, replaced, enabled and disabled. Problems are collected, not raised, so one
    unreachable source does not leave the rest undone."""
    from partyflow.manager.packs import PackManager

    pm = manager if manager is not None else PackManager(home)
    result = RestoreResult()
    if python and snapshot.python:
        from partyflow.manager.dependencies import target_python

        _restore_python(snapshot, home, target_python(home, python if isinstance(python, str) else None),
                        allow_conflicts, result)
    current = capture(home, python=None)
    for name in sorted(set(current.packs) - set(snapshot.packs)):
        if snapshot.origin == "comfyui-manager":  # as ComfyUI-Manager restores: packs it did not list are disabled
            if current.packs[name].enabled:
                _step(result, f"disable {name}", lambda n=name: pm.disable(n))
            continue
        _step(result, f"uninstall {name}", lambda n=name: pm.uninstall(n))
    for name, want in sorted(snapshot.packs.items()):
        have = current.packs.get(name)
        if have is not None and not _content_differs(have, want):
            pass
        elif want.source is None and want.registry_id is None:
            result.problems.append(f"{name}: the snapshot has no source for it (installed by hand)"
                                   + ("" if have is None else "; its content differs and was left as is"))
            continue
        else:
            spec = _spec_for(want, home, result)
            if spec is None:
                continue
            verb = "replace" if have is not None else "install"  # a replace keeps the old pack until the new passes
            if not _step(result, f"{verb} {name} from {spec.describe()}",
                         lambda s=spec, n=name, r=have is not None: pm.install(s, name=n, allow_conflicts=allow_conflicts,
                                                                              replace=r)):
                continue
            have = replace(want, enabled=True)
        if want.enabled != have.enabled:
            verb = "enable" if want.enabled else "disable"
            _step(result, f"{verb} {name}", lambda n=name, v=verb: getattr(pm, v)(n))
    after = capture(home, python=None)
    for name, want in snapshot.packs.items():
        got = after.packs.get(name)
        if got is not None and want.content_hash and got.content_hash != want.content_hash \
                and want.source is not None:
            result.problems.append(f"{name}: content hash {got.content_hash} differs from the snapshot's "
                                   f"{want.content_hash} (the source changed since)")
    return result


# ---- helpers -----------------------------------------------------------------------------------------------

def _content_differs(a: PackState, b: PackState) -> bool:
    if a.content_hash and b.content_hash:
        return a.content_hash != b.content_hash
    if a.registry_id or b.registry_id:  # ComfyUI-Manager snapshots carry no hashes: compare versions
        return (a.version or (a.source.version if a.source else None)) != b.version
    return (a.commit or a.version) != (b.commit or b.version)


def _spec_for(want: PackState, home: Home, result: RestoreResult) -> SourceSpec | None:
    if want.registry_id:
        from partyflow.manager.registry import RegistryClient, RegistryError

        try:
            info = RegistryClient.for_home(home).install_info(want.registry_id, want.version)
        except RegistryError as exc:
            result.problems.append(f"{want.name}: {exc}")
            return None
        return SourceSpec(kind="url", location=info.download_url, version=info.version, name=want.name)
    return want.install_spec()


def _step(result: RestoreResult, label: str, action: Any) -> bool:
    try:
        action()
    except ManagerError as exc:
        result.problems.append(f"{label}: {exc}")
        return False
    result.actions.append(label)
    return True


def _restore_python(snapshot: Snapshot, home: Home, python: str, allow_conflicts: bool,
                    result: RestoreResult) -> None:
    from partyflow.manager.dependencies import (
        DependencyError,
        install_requirements,
        installed_packages,
        protected_packages,
    )

    have = installed_packages(python)
    protected = protected_packages(home)
    pins = {}
    for name, version in snapshot.python.items():
        key = canonicalize_name(name)
        if key in _NEVER_PIN or have.get(key) == version:
            continue
        if key in protected and key in have and not allow_conflicts:
            result.python_kept[key] = have[key]
            continue
        pins[key] = version
    if not pins:
        return
    try:
        report = install_requirements([f"{k}=={v}" for k, v in sorted(pins.items())], home=home,
                                      pack="snapshot", allow_conflicts=True, python=python)
    except DependencyError as exc:
        result.problems.append(f"python packages: {exc}")
        return
    result.python_installed = {**report.installed, **{k: v[1] for k, v in report.changed.items()}}
    result.actions.append(f"pinned {len(pins)} Python package(s)")


def _from_comfyui_manager(data: Mapping[str, Any]) -> Snapshot:
    from partyflow.manager.sources import default_name

    packs: dict[str, PackState] = {}
    for url, info in (data.get("git_custom_nodes") or {}).items():
        info = info if isinstance(info, Mapping) else {}
        spec = SourceSpec(kind="git", location=str(url), version=info.get("hash"))
        name = default_name(spec)
        packs[name] = PackState(name=name, enabled=not info.get("disabled", False), source=spec,
                                version=info.get("hash"), commit=info.get("hash"))
    for node_id, version in (data.get("cnr_custom_nodes") or {}).items():
        packs[str(node_id)] = PackState(name=str(node_id), version=str(version), registry_id=str(node_id))
    for item in data.get("file_custom_nodes") or []:
        filename = str(item.get("filename", ""))
        stem = filename.removesuffix(".disabled").removesuffix(".py")
        if stem:
            packs[stem] = PackState(name=stem, enabled=not item.get("disabled", False), single_file=True)
    python: dict[str, str] = {}
    for line in data.get("pips") or {}:
        match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*(\S+)\s*", str(line))
        if match:
            python[canonicalize_name(match.group(1))] = match.group(2)
    return Snapshot(packs=packs, python=python, origin="comfyui-manager", comfyui=data.get("comfyui"))
