"""Installed node packs: install, uninstall, disable, enable, update, list and inspect them.

`PackManager` is the Python API behind `partyflow nodes ...` (and, later, the server's manager routes). Every
operation takes the manager lock, first finishes or undoes whatever a killed process left (journal.recover), then
works in a staging folder and activates through a journaled rename, and appends the outcome, failures included, to
the audit log. Packs follow ComfyUI's layout: enabled in custom_nodes/, disabled in custom_nodes/.disabled/.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import importlib
import os
import shutil
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from partyflow.config import ConfigError, Home, resolve_home
from partyflow.manager import gitsource
from partyflow.manager.archives import ArchiveLimits
from partyflow.manager.audit import AuditLog
from partyflow.manager.comfyui_manager_compat import (
    disabled_entry_name,
    disabled_folder_name,
    mark_registry_pack,
)
from partyflow.manager.errors import ManagerError, UnknownPackError
from partyflow.manager.install_script import run_install_script
from partyflow.manager.journal import Operation, Recovered, recover
from partyflow.manager.provenance import PackRecord, RecordStore, tree_hash
from partyflow.manager.sources import (
    FetchedPack,
    Progress,
    SourceSpec,
    default_name,
    fetch,
    spec_from_text,
    split_version,
    validate_pack_name,
    with_version,
)
from partyflow.manager.staging import ManagerPaths, checkpoint, operation_lock
from partyflow.manager.verify import verify_pack

__all__ = ["InstalledPack", "OperationResult", "PackManager"]


@dataclass(frozen=True)
class InstalledPack:
    """A pack on disk, with its provenance when the manager installed it (`record` None: put there by hand)."""

    name: str
    enabled: bool
    path: Path
    single_file: bool
    record: PackRecord | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "enabled": self.enabled, "path": str(self.path), "single_file": self.single_file,
                "managed": self.record is not None, "record": self.record.to_dict() if self.record else None}


@dataclass(frozen=True)
class OperationResult:
    action: str
    pack: str
    changed: bool
    message: str
    record: PackRecord | None = None
    node_types: tuple[str, ...] = ()
    recovered: tuple[Recovered, ...] = ()
    security: dict[str, Any] | None = None  # # security policy (issue 6, item 5): signature, scan summary, decision

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "pack": self.pack, "changed": self.changed, "message": self.message,
                "record": self.record.to_dict() if self.record else None, "node_types": list(self.node_types),
                "recovered": [dataclasses.asdict(r) for r in self.recovered], "security": self.security}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _quiet(message: str, done: int | None = None, total: int | None = None) -> None:
    """Default progress sink."""


class PackManager:
    """Manage the node packs of one home.

    `trusted` is true for a user at their own terminal (the CLI): only running install.py is gated by the security
    level. A server passes `trusted=False` (and `loopback` for a 127.0.0.1 listener) to apply ComfyUI-Manager's
    whole risk table. Security policy (issue 6, item 5): every install and update is also signature-checked and
    scanned before anything of the pack runs; `partyflow.security.policy` makes all these decisions.
    """

    def __init__(self, home: Home | Path | str | None = None, *, progress: Progress | None = None,
                 limits: ArchiveLimits = ArchiveLimits(), verify_timeout: float = 60.0,
                 install_script_timeout: float = 600.0, trusted: bool = True, loopback: bool = True,
                 actor: str | None = None, security_level: str | None = None) -> None:
        self.home = home if isinstance(home, Home) else Home(resolve_home(home))
        self.paths = ManagerPaths(self.home)
        self.records = RecordStore(self.paths.records)
        self.progress = progress or _quiet
        self.limits = limits
        self.verify_timeout = verify_timeout
        self.install_script_timeout = install_script_timeout
        self.trusted = trusted
        self.loopback = loopback
        self.actor = actor
        self.security_level = security_level  # # security policy (issue 6, item 5): --security-level, None = config/env

    # --- queries -------------------------------------------------------------------------------------------

    def installed(self) -> list[InstalledPack]:
        """Every pack in custom_nodes/ and custom_nodes/.disabled/, enabled ones first, by name."""
        records = self.records.load()
        found: list[InstalledPack] = []
        for folder, enabled in ((self.home.custom_nodes, True), (self.home.disabled_nodes, False)):
            for entry in _pack_entries(folder):
                name = entry.stem if entry.is_file() else entry.name
                if self._comfyui_manager and not enabled:  # `.disabled/<id>@<version>` is pack <id>
                    name = disabled_entry_name(entry, True) or name
                found.append(InstalledPack(name, enabled, entry, entry.is_file(), records.get(name)))
        if self._comfyui_manager:  # ComfyUI-Manager's older convention: `<name>.disabled` beside the others
            for entry in _old_style_disabled(self.home.custom_nodes):
                name = disabled_entry_name(entry, False) or entry.name
                found.append(InstalledPack(name, False, entry, entry.is_file(), records.get(name)))
        return found

    @property
    def _comfyui_manager(self) -> bool:
        """A ComfyUI target: read and write ComfyUI-Manager's conventions (comfyui_manager_compat)."""
        return getattr(self.home, "target", None) is not None

    def info(self, name: str) -> InstalledPack:
        return self._find(name)

    def recover(self) -> list[Recovered]:
        """Finish or undo interrupted operations (every operation does this first)."""
        with operation_lock(self.paths.ensure()):
            return self._recover()

    # --- operations ----------------------------------------------------------------------------------------

    def install(self, target: str | SourceSpec, *, name: str | None = None, allow_conflicts: bool = False,
                skip_install_script: bool = False, isolate: bool = False, force: bool = False,
                origin: Any = None, signature: Any = None, replace: bool = False) -> OperationResult:
        """Install from a path, archive, URL (each with an optional @VERSION) or a catalog name, or a SourceSpec.

        `replace`: an installed pack of that name is swapped for the new one in the same journaled step (the
        old one stays in place until the new one has passed every check), as snapshot restores need.
        `isolate`: give the pack its own virtual environment and run its nodes in a worker process of it.
        `force`: install although the security scan found something at the level's refusal threshold (trusted
        callers only, never at `strong`; recorded in the audit log).
        `origin`, `signature` (`partyflow.security.policy` types): provenance the caller has already verified,
        for a pack taken out of a signed bundle; the policy judges it by them instead of by the spec's kind.
        """
        label = target.describe() if isinstance(target, SourceSpec) else target
        return self._run("install", name or label, lambda: self._install(target, name, allow_conflicts,
                                                                        skip_install_script, isolate, force,
                                                                        origin, signature, replace))

    def uninstall(self, name: str) -> OperationResult:
        """Remove a pack (enabled or disabled). Python packages it brought stay: others may share them."""
        return self._run("uninstall", name, lambda: self._uninstall(name))

    def disable(self, name: str) -> OperationResult:
        return self._run("disable", name, lambda: self._set_enabled(name, False))

    def enable(self, name: str) -> OperationResult:
        return self._run("enable", name, lambda: self._set_enabled(name, True))

    def update(self, name: str, *, version: str | None = None, allow_conflicts: bool = False,
               skip_install_script: bool = False, force: bool = False) -> OperationResult:
        """Bring a pack to the newest commit of its branch (git), to `version`, or re-fetch its archive/folder.

        A pack pinned to a tag or commit stays where it is unless `version` is given.
        """
        return self._run("update", name, lambda: self._update(name, version, allow_conflicts, skip_install_script,
                                                              force))

    def update_all(self, *, allow_conflicts: bool = False, skip_install_script: bool = False,
                   force: bool = False) -> list[OperationResult | ManagerError]:
        """Update every managed pack; one pack's failure does not stop the others (each is its own operation)."""
        outcomes: list[OperationResult | ManagerError] = []
        for pack in self.installed():
            if pack.record is None:
                continue
            try:
                outcomes.append(self.update(pack.name, allow_conflicts=allow_conflicts,
                                            skip_install_script=skip_install_script, force=force))
            except ManagerError as exc:
                outcomes.append(exc)
        return outcomes

    # --- the frame every operation runs in -----------------------------------------------------------------

    def _run(self, action: str, label: str, body: Callable[[], OperationResult]) -> OperationResult:
        self.paths.ensure()
        with operation_lock(self.paths), AuditLog(self.home) as audit:
            recovered = self._recover(audit)
            try:
                result = body()
            except ManagerError as exc:
                audit.record(action, result="refused" if exc.user_error else "failed", pack=exc.pack or label,
                             error=str(exc), actor=self.actor,
                             details=getattr(exc, "details", None) or None)  # # security policy (issue 6, item 5)
                raise
            except ConfigError as exc:
                audit.record(action, result="refused", pack=label, error=str(exc), actor=self.actor)
                raise ManagerError(str(exc), pack=label, user_error=True) from exc
            except Exception as exc:
                audit.record(action, result="failed", pack=label, error=f"{type(exc).__name__}: {exc}",
                             actor=self.actor)
                raise _unexpected(action, label, exc) from exc
            except BaseException:
                audit.record(action, result="failed", pack=label, error="interrupted", actor=self.actor)
                raise
            record = result.record
            audit.record(action, result="ok" if result.changed else "unchanged", pack=result.pack,
                         version=_version_label(record), content_hash=record.content_hash if record else None,
                         source=record.source.describe() if record else None,
                         details={"message": result.message, "node_types": list(result.node_types),
                                  **({"security": result.security} if result.security else {})},  # # security policy (issue 6, item 5)
                         actor=self.actor)
        return dataclasses.replace(result, recovered=tuple(recovered))

    def _recover(self, audit: AuditLog | None = None) -> list[Recovered]:
        done = recover(self.paths, _dependency_rollback(self.home))
        if done:
            log = audit or AuditLog(self.home)
            try:
                for item in done:
                    log.record("recover", result="recovered", pack=item.pack, actor=self.actor,
                               details={"operation": item.action, "outcome": item.outcome, "op_id": item.op_id})
            finally:
                if audit is None:
                    log.close()
        return done

    # --- install -------------------------------------------------------------------------------------------

    def _install(self, target: str | SourceSpec, name: str | None, allow_conflicts: bool,
                 skip_install_script: bool, isolate: bool = False, force: bool = False,
                 origin: Any = None, signature: Any = None, replace: bool = False) -> OperationResult:
        if isolate and getattr(self.home, "target", None) is not None:
            raise ManagerError("--isolate is not available for a ComfyUI install: ComfyUI loads every pack into "
                               "its own process, so the pack would not run in an environment of its own",
                               pack=name or str(target), user_error=True, hint="install it without --isolate")
        spec, catalog_name = self._resolve_target(target, name)
        policy, caller = self._policy(), self._caller()  # # security policy (issue 6, item 5)
        origin = origin if origin is not None else _origin(spec, catalog_name)
        policy.require(policy.source(origin, caller), pack=spec.name)
        pack_name = default_name(spec)
        existing = self._locate(pack_name)
        if existing is not None and replace:
            policy.require(policy.manage(caller, f"replacing {pack_name}"), pack=pack_name)
        elif existing is not None:
            state = "enabled" if existing.enabled else "disabled"
            raise ManagerError(f"a pack named {pack_name!r} is already installed ({state}, {existing.path})",
                               pack=pack_name, user_error=True,
                               hint="use 'partyflow nodes update' or 'enable', or pass --name to install it "
                                    "under another name")
        operation = Operation(self.paths, "install", pack_name)
        staged_env = None
        try:
            fetched = fetch(spec, operation.workdir, limits=self.limits, progress=self.progress)
            if self._comfyui_manager:  # a registry archive gets ComfyUI-Manager's .tracking, as its installs do
                mark_registry_pack(fetched.path, spec.kind)
            checkpoint("fetched")
            security = self._security_gate(fetched.path, origin, force, pack_name,
                                           signature)  # # security policy (issue 6, item 5)
            if isolate:  # isolated packs (issue 6, item 8)
                staged_env, (report, node_types, script) = self._prepare_isolated(fetched.path, pack_name,
                                                                                  skip_install_script)
            else:
                report, node_types, script = self._prepare(fetched.path, operation, allow_conflicts,
                                                           skip_install_script)
            record = PackRecord(
                name=pack_name, source=spec, content_hash=tree_hash(fetched.path), installed_at=_now(),
                version=fetched.version,
                commit=fetched.commit, ref_kind=fetched.ref_kind, archive_sha256=fetched.archive_sha256,
                single_file=fetched.path.is_file(), install_script=script, catalog=catalog_name,
                dependencies=_report_dict(report), isolated=isolate)
            target_path = self.paths.enabled_path(pack_name, record.single_file)
            checkpoint("verified")
            moves = [(fetched.path, target_path)]
            if existing is not None:  # replace: the old copy leaves with the workdir, in the same plan
                moves.insert(0, (existing.path, operation.workdir / "replaced"))
            operation.commit(moves, put={pack_name: record.to_dict()})
            if staged_env is not None:
                staged_env.activate()
        except BaseException:
            if staged_env is not None:
                staged_env.discard()
            _abort(operation, self.home)
            raise
        return OperationResult("install", pack_name, True,
                               f"installed {pack_name} from {spec.describe()}"
                               + (f" at {record.commit[:12]}" if record.commit else ""), record, node_types,
                               security=security)

    def _resolve_target(self, target: str | SourceSpec, name: str | None) -> tuple[SourceSpec, str | None]:
        """A spec, and the catalog name when the target came from a catalog."""
        if isinstance(target, SourceSpec):
            return (dataclasses.replace(target, name=name) if name else target), None
        spec = spec_from_text(target, name=name, bare_names_are_paths=self.trusted)
        if spec is not None:
            return spec, None
        base, _ = split_version(target)
        validate_pack_name(base)
        spec = _catalog_resolve(target, self.home, self._installed_names())  # the catalog reads NAME@VERSION
        return (dataclasses.replace(spec, name=name) if name else spec), base

    def _prepare(self, pack: Path, operation: Operation, allow_conflicts: bool,
                 skip_install_script: bool) -> tuple[Any, tuple[str, ...], str | None]:
        """Dependencies, install.py, then the import check: the order ComfyUI-Manager uses, because a pack often
        cannot import before its requirements are installed."""
        if pack.is_dir() and not (pack / "__init__.py").is_file():
            self._verify(pack)  # raises the clear "no __init__.py"
        script = self._check_install_script(pack, skip_install_script)
        report = None
        if pack.is_dir():
            self.progress(f"resolving dependencies of {pack.name}", None, None)
            report = _install_dependencies(pack, self.home, allow_conflicts)
            if report is not None:
                operation.note_dependencies(report, _report_dict(report) or {})
                checkpoint("dependencies")
        if script == "ran":
            self.progress(f"running {pack.name}/install.py", None, None)
            target = getattr(self.home, "target", None)  # a ComfyUI target: its Python, COMFYUI_PATH its root
            run_install_script(pack, self.paths.logs / f"{pack.name}.install.log", home_root=self.home.root,
                               timeout=self.install_script_timeout,
                               python=str(target.python) if target else None,
                               comfyui_path=target.root if target else None)
        self.progress(f"checking that {pack.name} imports", None, None)
        verified = self._verify(pack)
        return report, verified.node_types, script

    def _verify(self, pack: Path) -> Any:
        """Import the staged pack where it will run: partyflow's host, or a ComfyUI target's own Python."""
        target = getattr(self.home, "target", None)
        if target is not None:
            from partyflow.manager.comfyui_verify import verify_in_comfyui

            return verify_in_comfyui(pack, target, timeout=self.verify_timeout)
        return verify_pack(pack, self.home.root, timeout=self.verify_timeout)

    def _prepare_isolated(self, pack: Path, name: str, skip_install_script: bool) -> tuple[Any, tuple[Any, ...]]:
        """Isolated packs (issue 6, item 8): a staged venv with the pack's requirements, the pack imported in it."""
        from partyflow.manager.isolated_env import prepare_isolated

        script = self._check_install_script(pack, skip_install_script)
        if script == "ran":
            raise ManagerError(f"{name} has an install.py; for an isolated pack it would run with partyflow's own "
                               "Python and change partyflow's environment", pack=name, user_error=True,
                               hint="pass --skip-install-script (its requirements.txt is still installed into the "
                                    "pack's own environment)")
        self.progress(f"creating the environment of {name} and installing its requirements", None, None)
        staged = prepare_isolated(pack, name, self.home, timeout=self.verify_timeout)
        return staged, (staged.report, staged.node_types, script)

    def _check_install_script(self, pack: Path, skip: bool) -> str | None:
        if not (pack.is_dir() and (pack / "install.py").is_file()):
            return None
        if skip:
            return "skipped"
        policy = self._policy()  # # security policy (issue 6, item 5)
        if not policy.install_script(self._caller()).allowed:
            raise ManagerError(
                f"{pack.name} has an install.py, which runs arbitrary code; security level {policy.level.value!r} "
                "does not allow running it", pack=pack.name, user_error=True,
                hint="set security_level = \"normal-\" in config.toml if you trust this pack, or pass "
                     "--skip-install-script to install it without running the script")
        return "ran"

    # --- # security policy (issue 6, item 5): the one place installs ask -------------------------------------------------

    def policy(self) -> Any:
        """The `SecurityPolicy` this manager's operations obey; callers that install through it (bundles) ask
        the same policy up front."""
        return self._policy()

    def caller(self) -> Any:
        """Who this manager acts for, as the policy sees it (`security.policy.Caller`)."""
        return self._caller()

    def _policy(self) -> Any:
        from partyflow.security.policy import SecurityPolicy

        return SecurityPolicy.load(self.home, self.security_level)

    def _caller(self) -> Any:
        from partyflow.security.policy import Caller

        return Caller(trusted=self.trusted, loopback=self.loopback)

    def _security_gate(self, staged: Path, origin: Any, force: bool, name: str,
                       signature: Any = None) -> dict[str, Any]:
        """Signature and scan of the staged pack, before anything of it runs; refusals carry audit details."""
        from partyflow.manager.signing import pack_signature_status
        from partyflow.security.policy import enforce_staged

        self.progress(f"scanning {name}", None, None)
        return enforce_staged(self._policy(), staged, home=self.home, caller=self._caller(), origin=origin,
                              pack_signature=pack_signature_status(staged, self.home), force=force, name=name,
                              signature=signature)

    # --- update --------------------------------------------------------------------------------------------

    def _update(self, name: str, version: str | None, allow_conflicts: bool,
                skip_install_script: bool, force: bool = False) -> OperationResult:
        pack = self._find(name)
        old = pack.record
        if old is None:
            raise ManagerError(f"{name} was not installed by partyflow, so its source is unknown", pack=name,
                               user_error=True, hint="uninstall it and install it again with 'partyflow nodes "
                                                     "install' to manage it")
        policy = self._policy()  # # security policy (issue 6, item 5)
        policy.require(policy.manage(self._caller(), f"updating {name}"), pack=name)
        if old.source.kind == "git" and version is None and old.ref_kind in ("tag", "commit") \
                and old.version is not None:
            return OperationResult("update", name, False, f"{name} is pinned at {old.ref_kind} {old.version}; "
                                   "pass NAME@VERSION to move it", old)
        operation = Operation(self.paths, "update", name)
        staged_env = None
        try:
            fetched, spec = self._fetch_update(pack, old, version, operation.workdir)
            if self._comfyui_manager:
                mark_registry_pack(fetched.path, spec.kind)
            new_hash = tree_hash(fetched.path)
            if new_hash == old.content_hash and fetched.commit == old.commit:
                operation.abort()
                return OperationResult("update", name, False, f"{name} is up to date", old)
            checkpoint("fetched")
            security = self._security_gate(fetched.path, _origin(old.source, old.catalog), force,
                                           name)  # # security policy (issue 6, item 5)
            if old.isolated:  # isolated packs (issue 6, item 8)
                staged_env, (report, node_types, script) = self._prepare_isolated(fetched.path, name,
                                                                                  skip_install_script)
            else:
                report, node_types, script = self._prepare(fetched.path, operation, allow_conflicts,
                                                           skip_install_script)
            record = dataclasses.replace(
                old, source=spec, content_hash=new_hash, updated_at=_now(),
                version=fetched.version,
                commit=fetched.commit, ref_kind=fetched.ref_kind, archive_sha256=fetched.archive_sha256,
                install_script=script, dependencies=_report_dict(report))
            checkpoint("verified")
            operation.commit([(pack.path, operation.workdir / "previous"), (fetched.path, pack.path)],
                             put={name: record.to_dict()})
            if staged_env is not None:
                staged_env.activate()
        except BaseException:
            if staged_env is not None:
                staged_env.discard()
            _abort(operation, self.home)
            raise
        was = old.commit[:12] if old.commit else old.version or old.content_hash[:19]
        now = record.commit[:12] if record.commit else record.version or record.content_hash[:19]
        return OperationResult("update", name, True, f"updated {name}: {was} -> {now}", record, node_types,
                               security=security)

    def _fetch_update(self, pack: InstalledPack, old: PackRecord, version: str | None,
                      workdir: Path) -> tuple[FetchedPack, SourceSpec]:
        if old.source.kind == "git":
            # Work on a copy of the installed clone: files the pack wrote into its folder (downloaded models,
            # settings) come along, and the live pack is untouched until the rename.
            staged = workdir / pack.name
            self.progress(f"fetching {old.source.location}", None, None)
            shutil.copytree(pack.path, staged, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
            gitsource.fetch(staged)
            wanted = version or (old.version if old.ref_kind == "branch" else None)
            revision = gitsource.checkout(staged, wanted)
            spec = dataclasses.replace(old.source, version=version or old.source.version)
            fetched = FetchedPack(staged, pack.name, spec, revision.commit, revision.kind, ref=revision.ref)
            return fetched, spec
        if old.catalog:
            spec = _catalog_resolve(f"{old.catalog}@{version}" if version else old.catalog, self.home, ())
        else:
            spec = with_version(old.source, version)
        spec = dataclasses.replace(spec, name=pack.name)
        return fetch(spec, workdir, limits=self.limits, progress=self.progress), spec

    # --- uninstall, enable, disable ------------------------------------------------------------------------

    def _uninstall(self, name: str) -> OperationResult:
        pack = self._find(name)
        policy = self._policy()  # # security policy (issue 6, item 5)
        policy.require(policy.manage(self._caller(), f"uninstalling {name}"), pack=name)
        operation = Operation(self.paths, "uninstall", name)
        try:
            operation.commit([(pack.path, operation.workdir / "removed")], delete=[name])
        except BaseException:
            operation.abort()
            raise
        if pack.record is not None and pack.record.isolated:  # isolated packs (issue 6, item 8): drop its venv
            from partyflow.manager.isolated_env import remove_isolated

            remove_isolated(self.home, name)
        return OperationResult("uninstall", name, True, f"uninstalled {name}", pack.record)

    def _set_enabled(self, name: str, enabled: bool) -> OperationResult:
        action = "enable" if enabled else "disable"
        pack = self._find(name)
        policy = self._policy()  # switching a pack on or off is middle risk for a remote caller, as uninstalling
        policy.require(policy.manage(self._caller(), f"{action.rstrip('e')}ing {name}"), pack=name)
        if pack.enabled == enabled:
            return OperationResult(action, name, False, f"{name} is already {action}d", pack.record)
        target = (self.paths.enabled_path if enabled else self.paths.disabled_path)(name, pack.single_file)
        if self._comfyui_manager and not enabled:  # `.disabled/<id>@<version>`, as ComfyUI-Manager names them
            target = self.home.disabled_nodes / disabled_folder_name(pack.path, name)
        if os.path.lexists(target):
            raise ManagerError(f"cannot {action} {name}: {target} already exists", pack=name, user_error=True,
                               hint="uninstall one of the two copies first")
        operation = Operation(self.paths, action, name)
        try:
            operation.commit([(pack.path, target)])
        except BaseException:
            operation.abort()
            raise
        return OperationResult(action, name, True, f"{action}d {name}", pack.record)

    # --- lookups -------------------------------------------------------------------------------------------

    def _locate(self, name: str) -> InstalledPack | None:
        for pack in self.installed():
            if pack.name == name:
                return pack
        return None

    def _find(self, name: str) -> InstalledPack:
        pack = self._locate(name)
        if pack is None:
            raise UnknownPackError(name, _close(name, self._installed_names()))
        return pack

    def _installed_names(self) -> list[str]:
        return sorted({pack.name for pack in self.installed()})


# --- helpers -------------------------------------------------------------------------------------------------

def _pack_entries(folder: Path) -> Iterator[Path]:
    """ComfyUI's rule for what counts as a pack: folders and .py files, not hidden, not caches, not `*.disabled`."""
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name == "__pycache__" or entry.name.endswith(".disabled"):
            continue
        if entry.is_dir() or entry.suffix == ".py":
            yield entry


def _old_style_disabled(folder: Path) -> Iterator[Path]:
    """`<pack>.disabled` folders and `<file>.py.disabled` files in custom_nodes (ComfyUI skips both)."""
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.name.endswith(".disabled"):
            continue
        if entry.is_dir() or entry.name.endswith(".py.disabled"):
            yield entry


def _close(name: str, candidates: Any) -> list[str]:
    names = list(candidates)
    lowered = {n.lower(): n for n in names}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=5, cutoff=0.6)
    contains = [n for n in names if name.lower() in n.lower() and n.lower() not in matches]
    return [lowered[m] for m in matches] + contains[: max(0, 5 - len(matches))]


def _origin(spec: SourceSpec, catalog: str | None) -> Any:
    """# security policy (issue 6, item 5): where a pack comes from, as the policy sees it."""
    from partyflow.security.policy import Origin

    return Origin.of(spec.kind, catalog=bool(catalog))


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _unexpected(action: str, label: str, exc: Exception) -> ManagerError:
    """An error no step anticipated, in words a user can act on. A full disk is the likely one: copytree reports
    it as a list of (source, destination, reason) triples, which would bury the reason in paths."""
    causes: list[object] = [exc]
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        causes = [entry[2] for entry in exc.args[0] if isinstance(entry, tuple) and len(entry) == 3] or causes
    for cause in causes:
        code = getattr(cause, "errno", None)
        if code is None and isinstance(cause, str):
            code = next((c for c in _DISK_FULL if os.strerror(c) in cause), None)
        if code in _DISK_FULL:
            return ManagerError(f"{action} {label} failed: {os.strerror(code).lower()} while writing into the "
                                "home; nothing was changed", pack=label,
                                hint="free some disk space (or raise the quota or file size limit) and try again")
    return ManagerError(f"{action} {label} failed: {exc}", pack=label)


def _version_label(record: PackRecord | None) -> str | None:
    if record is None:
        return None
    if record.commit:
        return f"{record.version}@{record.commit[:12]}" if record.version else record.commit
    return record.version


def _catalog_resolve(name: str, home: Home, installed: Any) -> SourceSpec:
    """Ask the catalog module for `name` (NAME or NAME@VERSION); without it, only paths and URLs can be installed."""
    try:
        catalog = importlib.import_module("partyflow.manager.catalog")
    except ModuleNotFoundError as exc:
        if exc.name != "partyflow.manager.catalog":
            raise
        base = split_version(name)[0]
        error = UnknownPackError(base, _close(base, installed), where="catalog")
        error.hint = ((error.hint + "; " if error.hint else "")
                      + "no catalog is available: give a folder, an archive or a git URL")
        raise error from None
    return catalog.resolve(name, home)


def _dependency_module() -> Any:
    try:
        return importlib.import_module("partyflow.manager.dependencies")
    except ModuleNotFoundError as exc:
        if exc.name != "partyflow.manager.dependencies":
            raise
        return None


def _declares_dependencies(pack: Path) -> bool:
    if (pack / "requirements.txt").is_file():
        return any(line.strip() and not line.lstrip().startswith("#")
                   for line in (pack / "requirements.txt").read_text(encoding="utf-8", errors="replace").splitlines())
    pyproject = pack / "pyproject.toml"
    if pyproject.is_file():
        try:
            return bool(tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("dependencies"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            return False
    return False


def _install_dependencies(pack: Path, home: Home, allow_conflicts: bool) -> Any:
    module = _dependency_module()
    if module is None:
        if _declares_dependencies(pack):
            raise ManagerError(f"{pack.name} declares Python dependencies, but dependency installation is not "
                               "available in this partyflow", pack=pack.name,
                               hint="install its requirements yourself and copy the pack into custom_nodes")
        return None
    return module.install_for_pack(pack, home=home, allow_conflicts=allow_conflicts)


def _report_dict(report: Any) -> dict[str, Any] | None:
    if report is None:
        return None
    for method in ("to_dict", "as_dict"):
        if callable(getattr(report, method, None)):
            return getattr(report, method)()
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return dataclasses.asdict(report)
    return {"report": repr(report)}


def _dependency_rollback(home: Home) -> Callable[[dict[str, Any]], None] | None:
    """Undo a journaled dependency change after a crash, when the dependency module offers `rollback`."""
    module = _dependency_module()
    if module is None or not callable(getattr(module, "rollback", None)):
        return None
    return lambda data: module.rollback(data, home=home)


def _abort(operation: Operation, home: Home) -> None:
    """Undo an uncommitted operation: dependency changes first (the report knows them), then the staging folder."""
    report = operation.dependency_report
    if operation.entry.phase == "prepare" and report is not None and callable(getattr(report, "rollback", None)):
        try:
            report.rollback()
        finally:
            operation.abort()
        return
    operation.abort(_dependency_rollback(home))
