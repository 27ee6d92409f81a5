"""Promote a tested set of packs into an environment, all or nothing, with health checks and automatic rollback.

`promote` runs the steps an operator would, in an order where every refusal comes before anything changes:

1. **verify**: read the source (a snapshot file, or `env:NAME` for another environment's current state); a
   signed snapshot must check out against the *target's* keyring (narrowed by its `trusted_keys`); an unsigned one
   is refused where the target requires signatures.
2. **plan**: the change set (install, replace, uninstall, enable, disable) that brings the target to the source.
3. **scan**: fetch every pack to be installed into a scratch folder, check that its content is what the snapshot
   recorded (tree hash), and put it through the target's security gate (signature against the target's keys,
   scan at the target's level). The sandbox the health check needs must be there.
4. **apply** (not with `dry_run`): save a snapshot of the target (`pre-promote-<id>`) and a copy of every pack the
   change set touches, then carry out each change through `PackManager` (each one journaled and atomic).
5. **health**: import every enabled pack in the OS sandbox (as `nodes doctor` does) and run the smoke workflow,
   if given, headless in a fresh process. In a ComfyUI environment both happen in that ComfyUI, started once,
   headless and sandboxed, with its own interpreter (`comfyui_doctor.check_comfyui`).
6. **rollback** when a change or a check fails: one journaled operation moves the saved copies back and restores
   their records, so the target's packs return to exactly their previous tree hashes and enabled states.

Every step is appended to the target's audit log. A promotion killed half way leaves its copies and a state file;
the next promotion into that environment rolls it back first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from partyflow.config import ConfigError, Home
from partyflow.manager.audit import AuditLog
from partyflow.manager.environments import (
    Environment,
    environment,
    managed_packs,
    open_environment,
    pack_hash,
)
from partyflow.manager.errors import ManagerError
from partyflow.manager.journal import Operation
from partyflow.manager.provenance import RecordStore, atomic_write_json, tree_hash
from partyflow.manager.snapshots import PackState, Snapshot, SnapshotError
from partyflow.manager.sources import SourceSpec
from partyflow.manager.staging import operation_lock, remove_path

__all__ = ["Change", "PromotionError", "PromotionReport", "plan_changes", "promote", "snapshot_of"]

ENV_PREFIX = "env:"
COMFYUI_START_SECONDS = 300.0  # the least a ComfyUI environment's health check gives ComfyUI's whole start
STATE_FILE = "state.json"
Step = Callable[[str], None]


class PromotionError(ManagerError):
    """A promotion refused before anything changed (user_error) or one whose rollback could not finish."""


@dataclass(frozen=True)
class Change:
    """One step of the change set."""

    name: str
    action: str                      # install | replace | uninstall | enable | disable
    spec: SourceSpec | None = None
    detail: str = ""

    def describe(self) -> str:
        where = f" from {self.spec.describe()}" if self.spec else ""
        return f"{self.action} {self.name}{where}" + (f" ({self.detail})" if self.detail else "")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "source": self.spec.to_dict() if self.spec else None,
                "detail": self.detail, "summary": self.describe()}


@dataclass
class PromotionReport:
    """What happened; `status` is planned, unchanged, promoted or rolled back."""

    source: str
    target: str
    promotion_id: str
    dry_run: bool
    status: str = "planned"
    signature: dict[str, Any] | None = None
    security_level: str = ""
    changes: list[Change] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    health: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    before_snapshot: str | None = None
    rollback: dict[str, Any] | None = None
    recovered: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("planned", "unchanged", "promoted")

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "status": self.status, "source": self.source, "target": self.target,
                "promotion_id": self.promotion_id, "dry_run": self.dry_run, "security_level": self.security_level,
                "signature": self.signature, "changes": [c.to_dict() for c in self.changes], "checks": self.checks,
                "applied": self.applied, "health": self.health, "reason": self.reason,
                "before_snapshot": self.before_snapshot, "rollback": self.rollback, "recovered": self.recovered}


def _quiet(message: str) -> None:
    """Default step sink."""


def promote(home: Home, source: str, target: str, *, smoke_workflow: Path | None = None, dry_run: bool = False,
            import_timeout: float = 60.0, smoke_timeout: float = 300.0, step: Step = _quiet,
            confirm: Callable[[PromotionReport], bool] | None = None) -> PromotionReport:
    """Bring environment `target` to `source` (a snapshot file or `env:NAME`), as the module docstring says.

    Refusals before any change raise `PromotionError` (user errors) and are audited as `refused`; a change or
    check that fails after the apply began is rolled back and reported (status `rolled back`), not raised.
    `confirm` sees the checked plan before anything changes; False cancels (a refusal).
    """
    env = environment(home, target)
    manager = open_environment(env)
    report = PromotionReport(source, env.name, uuid.uuid4().hex[:12], dry_run)
    report.security_level = manager.policy().level.value
    area = _area(manager)
    area.mkdir(parents=True, exist_ok=True)
    with _promotion_lock(area):
        report.recovered = _recover(manager, area)
        try:
            step("verifying the source")
            snapshot, report.signature = _read_source(home, source, env, manager)
            trust = _trust(report.signature)
            _audit(manager, "promote.verify", report, details={"signature": report.signature})
            step("planning the change set")
            report.changes = plan_changes(snapshot, snapshot_of(manager))
            if smoke_workflow is not None and not smoke_workflow.is_file():
                raise PromotionError(f"smoke workflow {smoke_workflow} does not exist", user_error=True)
            if smoke_workflow is not None and _comfyui(manager) is not None:
                _api_workflow(smoke_workflow, env.name)
            if report.changes:
                _require_sandbox()
                step("fetching and scanning the packs to install")
                report.checks = _precheck(manager, snapshot, report.changes, area / report.promotion_id, trust)
            _audit(manager, "promote.plan", report, details={"changes": [c.describe() for c in report.changes],
                                                             "checks": report.checks, "dry_run": dry_run})
        except ConfigError as exc:  # another environment's table, or its home's config.toml
            _audit(manager, "promote", report, result="refused", error=str(exc))
            raise PromotionError(str(exc), user_error=True) from exc
        except ManagerError as exc:
            _audit(manager, "promote", report, result="refused" if exc.user_error else "failed",
                   error=exc.message, details=getattr(exc, "details", None) or None)
            if isinstance(exc, PromotionError) or not exc.user_error:
                raise
            raise PromotionError(exc.message, pack=exc.pack, hint=exc.hint, user_error=True) from exc
        if dry_run:
            return report
        if not report.changes and smoke_workflow is None:
            report.status = "unchanged"
            _audit(manager, "promote", report, result="unchanged")
            return report
        if confirm is not None and report.changes and not confirm(report):
            _audit(manager, "promote", report, result="refused", error="cancelled at the confirmation")
            raise PromotionError("promotion cancelled; nothing was changed", user_error=True)
        _apply_and_check(manager, snapshot, report, area / report.promotion_id, smoke_workflow, import_timeout,
                         smoke_timeout, step, trust)
    return report


# ---- reading the source ------------------------------------------------------------------------------------

def _read_source(home: Home, source: str, env: Environment, manager: Any) -> tuple[Snapshot, dict[str, Any]]:
    required = env.require_signed if env.require_signed is not None else \
        manager.policy().level.value == "strong"
    if source.startswith(ENV_PREFIX):
        name = source[len(ENV_PREFIX):]
        if name == env.name:
            raise PromotionError(f"cannot promote environment {name!r} into itself", user_error=True)
        if required:
            raise PromotionError(f"environment {env.name!r} accepts only signed snapshots, and the current state "
                                 f"of {name!r} carries no signature", user_error=True,
                                 hint=f"save a snapshot of {name}, sign it ('partyflow keys sign FILE') and "
                                      "promote the file")
        other = environment(home, name)
        return snapshot_of(open_environment(other)), {"state": "unsigned", "source": f"environment {name}"}
    path = Path(source).expanduser()
    if not path.is_file():
        raise PromotionError(f"no snapshot file {source!r}", user_error=True,
                             hint="give a snapshot file or env:NAME (the current state of an environment)")
    document = _document(path)
    try:
        snapshot = Snapshot.from_dict(document)
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PromotionError(f"{path}: not a usable snapshot ({type(exc).__name__}: {exc})", user_error=True) \
            from None
    if document.get("signature") in (None, ""):
        if required:
            raise PromotionError(f"{path} is not signed, and environment {env.name!r} accepts only signed "
                                 "snapshots", user_error=True, hint="sign it with 'partyflow keys sign FILE'")
        return snapshot, {"state": "unsigned"}
    from partyflow.manager.keys import Keyring
    from partyflow.manager.signing import SignatureError, verify_snapshot

    keyring = Keyring(manager.home)  # the target's own keys: a ComfyUI install's are in user/__partyflow/keys
    try:
        verified = verify_snapshot(document, keyring, allowed=env.trusted_keys, what=f"snapshot {path.name}")
    except SignatureError as exc:
        target = _comfyui(manager)
        if target is None:
            raise
        if env.trusted_keys and exc.key is not None and exc.key.key_id not in env.trusted_keys:
            raise PromotionError(exc.message, user_error=True,
                                 hint=f"add {exc.key.key_id} to trusted_keys in [environments.{env.name}]") from None
        raise PromotionError(f"{exc.message} (environment {env.name!r} trusts the keyring of its ComfyUI install, "
                             f"{keyring.root})", user_error=True,
                             hint=f"trust the signer there: partyflow --comfyui {target.root} keys trust "
                                  "PUBLIC-KEY --name NAME") from None
    return snapshot, {"state": "signed", "key_id": verified.key.key_id, "key": verified.key.name,
                      "digest": verified.digest}


def _document(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ImportError:
        raise PromotionError(f"{path}: reading YAML snapshots needs PyYAML (pip install pyyaml)") from None
    except Exception as exc:  # noqa: BLE001 - any read or parse error is the same problem for the user
        raise PromotionError(f"{path}: corrupt snapshot, cannot be parsed ({exc})", user_error=True) from None
    if not isinstance(data, Mapping):
        raise PromotionError(f"{path}: corrupt snapshot, not a JSON object", user_error=True)
    return data


def snapshot_of(manager: Any) -> Snapshot:
    """The packs of the environment `manager` acts on, as a snapshot (no Python packages). A pack put there by
    hand is given its own folder as the source, so promoting it copies exactly that content."""
    packs: dict[str, PackState] = {}
    for pack in managed_packs(manager):
        record = pack.record
        source = record.source if record else SourceSpec("dir", str(pack.path), name=pack.name)
        packs[pack.name] = PackState(name=pack.name, enabled=pack.enabled, source=source,
                                     version=record.version if record else None,
                                     commit=record.commit if record else None, content_hash=pack_hash(pack.path),
                                     single_file=pack.single_file)
    return Snapshot(packs=packs, python={}, created=datetime.now(UTC).isoformat(timespec="seconds"))


# ---- planning and checking ---------------------------------------------------------------------------------

def plan_changes(want: Snapshot, have: Snapshot) -> list[Change]:
    """The steps that turn `have` into `want`: removals first, then installs and replacements, then switches."""
    from partyflow.manager.snapshots import _content_differs

    changes = [Change(name, "uninstall") for name in sorted(set(have.packs) - set(want.packs))]
    for name, wanted in sorted(want.packs.items()):
        current = have.packs.get(name)
        enabled_after = current.enabled if current is not None else None
        if current is None or _content_differs(current, wanted):
            spec = wanted.install_spec()
            if spec is None:
                what = f"registry id {wanted.registry_id}" if wanted.registry_id else "no source (installed by hand)"
                raise PromotionError(f"cannot promote {name}: the snapshot names {what}", pack=name,
                                     user_error=True, hint="promote a partyflow snapshot or env:NAME, whose packs "
                                                           "carry a source and a content hash")
            detail = "" if current is None else _difference(current, wanted)
            changes.append(Change(name, "replace" if current is not None else "install", spec, detail))
            enabled_after = True
        if wanted.enabled != enabled_after:
            changes.append(Change(name, "enable" if wanted.enabled else "disable"))
    return changes


def _difference(a: PackState, b: PackState) -> str:
    fields = [f for f in ("version", "commit", "content_hash") if getattr(a, f) != getattr(b, f)]
    return "differs in " + ", ".join(fields) if fields else "differs"


def _require_sandbox() -> None:
    from partyflow.security.sandbox import SandboxUnavailable, check

    try:
        check()
    except SandboxUnavailable as exc:
        raise PromotionError(f"the health check imports packs only inside the OS sandbox, which is not available "
                             f"here: {exc}", user_error=True) from None


def _trust(signature: dict[str, Any] | None) -> tuple[Any, Any] | None:
    """What a verified snapshot signature vouches for, as the security policy sees it.

    The signer approved each pack by its content hash, and the hash is checked before (and again after) the
    install, so a signed snapshot stands in for packs that carry no signature of their own, as a signed bundle
    does: origin `catalog`, signature `signed`. An unsigned source vouches for nothing (None)."""
    if not signature or signature.get("state") != "signed":
        return None
    from partyflow.security.policy import Origin, SignatureStatus

    return Origin.CATALOG, SignatureStatus("signed", signer=f"{signature['key']} ({signature['key_id']})",
                                           reason="content hash listed in a signed snapshot")


def _precheck(manager: Any, want: Snapshot, changes: list[Change], scratch: Path,
              trust: tuple[Any, Any] | None) -> list[dict[str, Any]]:
    """Fetch each pack to install, compare it with the snapshot's hash and pass it through the target's gate."""
    from partyflow.manager.packs import _origin
    from partyflow.manager.signing import pack_signature_status
    from partyflow.manager.sources import fetch
    from partyflow.security.policy import enforce_staged

    results: list[dict[str, Any]] = []
    try:
        for change in changes:
            if change.spec is None:
                continue
            workdir = scratch / "check" / change.name
            workdir.mkdir(parents=True)
            fetched = fetch(change.spec, workdir, limits=manager.limits)
            expected = want.packs[change.name].content_hash
            actual = pack_hash(fetched.path)
            if expected and actual != expected:
                raise PromotionError(f"{change.name}: its source now gives content {actual[:19]}..., not the "
                                     f"{expected[:19]}... the snapshot recorded", pack=change.name, user_error=True,
                                     hint="the source changed since the snapshot was taken: take a new one")
            vouched = trust if trust is not None and expected else None
            origin = vouched[0] if vouched else _origin(change.spec, None)
            policy = manager.policy()
            policy.require(policy.source(origin, manager.caller()), pack=change.name)
            details = enforce_staged(policy, fetched.path, home=manager.home, caller=manager.caller(),
                                     origin=origin, pack_signature=pack_signature_status(fetched.path, manager.home),
                                     name=change.name, signature=vouched[1] if vouched else None)
            results.append({"pack": change.name, "content_hash": actual, **details})
    finally:
        remove_path(scratch)
    return results


# ---- applying, checking and rolling back -------------------------------------------------------------------

def _apply_and_check(manager: Any, want: Snapshot, report: PromotionReport, saved: Path,
                     smoke: Path | None, import_timeout: float, smoke_timeout: float, step: Step,
                     trust: tuple[Any, Any] | None) -> None:
    step("saving the target's state")
    try:
        report.before_snapshot = str(_save_before(manager, report.promotion_id))
        _save_copies(manager, report, saved)
    except OSError as exc:
        remove_path(saved)
        _audit(manager, "promote", report, result="failed", error=f"saving the target's state: {exc}")
        raise PromotionError(f"cannot save {report.target}'s state before changing it ({exc}); nothing was "
                             "changed", hint="free some disk space in the target's home and try again") from exc
    failure: str | None = None
    try:
        failure = _apply(manager, want, report, step, trust)
        if failure is None:
            step("health check: content, then importing every pack in the sandbox")
            failure = _content_check(manager, want, report) or \
                _health(manager, report, smoke, import_timeout, smoke_timeout, step)
            _audit(manager, "promote.health", report, result="failed" if failure else "ok", error=failure,
                   details=report.health)
    except Exception as exc:  # noqa: BLE001 - whatever broke after the first change, the target goes back
        failure = f"unexpected error: {type(exc).__name__}: {exc}"
    if failure is None:
        remove_path(saved)
        report.status = "promoted"
        _audit(manager, "promote", report, details={"changes": report.applied,
                                                    "before_snapshot": report.before_snapshot})
        return
    report.reason = failure
    step("rolling back")
    report.rollback = rollback(manager, saved)
    report.status = "rolled back"
    _audit(manager, "promote.rollback", report, result="ok" if report.rollback["exact"] else "failed",
           error=failure, details=report.rollback)
    _audit(manager, "promote", report, result="failed", error=failure)


def _apply(manager: Any, want: Snapshot, report: PromotionReport, step: Step,
           trust: tuple[Any, Any] | None) -> str | None:
    """Each change in order, stopping at the first that fails (its reason returned)."""
    failure = None
    for change in report.changes:
        step(change.describe())
        vouched = trust if change.name in want.packs and want.packs[change.name].content_hash else None
        try:
            _do(manager, change, vouched)
        except ManagerError as exc:
            failure = f"{change.describe()} failed: {exc.message}"
            break
        report.applied.append(change.describe())
    _audit(manager, "promote.apply", report, result="failed" if failure else "ok", error=failure,
           details={"applied": report.applied})
    return failure


def _do(manager: Any, change: Change, trust: tuple[Any, Any] | None) -> None:
    if change.action in ("install", "replace"):
        origin, signature = trust if trust is not None else (None, None)
        current = manager.info(change.name).record if change.action == "replace" else None
        manager.install(change.spec, name=change.name, replace=change.action == "replace", origin=origin,
                        signature=signature, isolate=bool(current is not None and current.isolated))
    else:
        getattr(manager, change.action)(change.name)


def _content_check(manager: Any, want: Snapshot, report: PromotionReport) -> str | None:
    """Every installed pack must be what the snapshot recorded (a source that changed between the scan and the
    install would otherwise slip in under the snapshot's signature)."""
    installed = {p.name: p for p in manager.installed()}
    wrong = []
    for change in report.changes:
        expected = want.packs[change.name].content_hash if change.name in want.packs else None
        pack = installed.get(change.name)
        if change.spec is not None and expected and pack is not None and pack_hash(pack.path) != expected:
            wrong.append(change.name)
    report.health["content"] = {"checked": sum(1 for c in report.changes if c.spec is not None), "wrong": wrong}
    return f"content check: {', '.join(wrong)} differ from the snapshot's content hash" if wrong else None


def _venv(manager: Any, name: str) -> Path:
    from partyflow.nodes.isolation.environment import venv_dir

    return venv_dir(manager.home.root, name)


def _save_before(manager: Any, promotion_id: str) -> Path:
    """The target's state before the promotion, as a snapshot file; in a ComfyUI install, in ComfyUI-Manager's
    format in its snapshot folder (with ours inside), so either tool can restore it."""
    path = manager.home.snapshots / f"pre-promote-{promotion_id}.json"
    snapshot = snapshot_of(manager)
    if _comfyui(manager) is None:
        atomic_write_json(path, snapshot.to_dict())
    else:
        from partyflow.manager.snapshots import _document

        atomic_write_json(path, _document(manager.home, snapshot, with_python=False))
    return path


def _save_copies(manager: Any, report: PromotionReport, saved: Path) -> None:
    """Copy every pack the change set touches (with its record), and name those it adds, before any change."""
    records = RecordStore(manager.paths.records).load()
    installed = {p.name: p for p in manager.installed()}
    touched: dict[str, Any] = {}
    for name in dict.fromkeys(c.name for c in report.changes):
        pack = installed.get(name)
        if pack is None:
            touched[name] = None
            continue
        copy = saved / "packs" / pack.path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        if pack.path.is_dir():
            shutil.copytree(pack.path, copy, symlinks=True)
        else:
            shutil.copy2(pack.path, copy)
        record = records.get(name)
        touched[name] = {"location": str(pack.path), "copy": str(copy),
                         "record": record.to_dict() if record else None, "content_hash": tree_hash(pack.path),
                         "enabled": pack.enabled, "venv": None}
        venv = _venv(manager, name)
        if record is not None and record.isolated and venv.is_dir():  # replacing or removing it drops its venv
            venv_copy = saved / "venvs" / name
            venv_copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(venv, venv_copy, symlinks=True)
            touched[name]["venv"] = {"location": str(venv), "copy": str(venv_copy)}
    atomic_write_json(saved / STATE_FILE, {"promotion_id": report.promotion_id, "source": report.source,
                                           "touched": touched})


def rollback(manager: Any, saved: Path) -> dict[str, Any]:
    """Put every touched pack back as it was (one journaled operation) and check the result; `exact` says
    whether every tree hash and enabled state matches what was saved."""
    state = json.loads((saved / STATE_FILE).read_text(encoding="utf-8"))
    touched: dict[str, Any] = state["touched"]
    manager.paths.ensure()
    with operation_lock(manager.paths):
        manager._recover()  # finish or undo a change that a crash left half done, before moving anything
        operation = Operation(manager.paths, "promote-rollback", state["promotion_id"])
        try:
            moves: list[tuple[Path, Path]] = []
            live = {p.name: p for p in manager.installed()}
            for index, name in enumerate(sorted(touched)):
                if name in live:
                    moves.append((live[name].path, operation.workdir / f"{index}-{live[name].path.name}"))
                info = touched[name]
                if info is not None and info.get("venv") and os.path.lexists(info["venv"]["location"]):
                    moves.append((Path(info["venv"]["location"]), operation.workdir / f"{index}-venv"))
            put: dict[str, dict[str, Any]] = {}
            delete: list[str] = []
            for name, info in sorted(touched.items()):
                if info is None or info["record"] is None:
                    delete.append(name)
                if info is not None:
                    moves.append((Path(info["copy"]), Path(info["location"])))
                    if info.get("venv"):
                        moves.append((Path(info["venv"]["copy"]), Path(info["venv"]["location"])))
                    if info["record"] is not None:
                        put[name] = info["record"]
            operation.commit(moves, put=put, delete=delete)
        except BaseException:
            operation.abort()
            raise
    after = {p.name: p for p in manager.installed()}
    problems = []
    for name, info in sorted(touched.items()):
        got = after.get(name)
        if info is None and got is not None:
            problems.append(f"{name} is still installed")
        elif info is not None and (got is None or tree_hash(got.path) != info["content_hash"]
                                   or got.enabled != info["enabled"]):
            problems.append(f"{name} differs from its saved state")
    remove_path(saved)
    return {"exact": not problems, "restored": sorted(n for n, i in touched.items() if i is not None),
            "removed": sorted(n for n, i in touched.items() if i is None), "problems": problems}


def _recover(manager: Any, area: Path) -> list[str]:
    """Roll back promotions a killed process left between apply and its end."""
    done = []
    for saved in sorted(p for p in area.iterdir() if p.is_dir()):
        if (saved / STATE_FILE).is_file():
            result = rollback(manager, saved)
            done.append(f"rolled back interrupted promotion {saved.name}"
                        + ("" if result["exact"] else f" ({'; '.join(result['problems'])})"))
            with AuditLog(manager.home) as audit:
                audit.record("promote.rollback", result="recovered", details={"promotion_id": saved.name,
                                                                               **result})
        else:
            remove_path(saved)  # scratch of a promotion that never got to apply
    return done


def _health(manager: Any, report: PromotionReport, smoke: Path | None, import_timeout: float,
            smoke_timeout: float, step: Step) -> str | None:
    """Import every enabled pack where it will run. In a home: each pack in its own sandboxed subprocess. In a
    ComfyUI install: that ComfyUI started once, headless and sandboxed, with its own interpreter, its log read per
    pack (`comfyui_doctor`): a pack's health there depends on ComfyUI's modules and Python, not partyflow's."""
    from partyflow.manager.doctor import diagnose

    outcome: dict[str, Any] | None = None
    try:
        if _comfyui(manager) is not None:
            from partyflow.manager.comfyui_doctor import check_comfyui

            report.health["checker"] = "comfyui"
            if smoke is not None:
                step(f"health check: starting ComfyUI, then running {smoke.name} in it")
            workflow = _api_workflow(smoke, report.target) if smoke is not None else None
            results, outcome = check_comfyui(manager.home, workflow=workflow,
                                             timeout=max(import_timeout, COMFYUI_START_SECONDS)
                                             + (smoke_timeout if smoke is not None else 0))
        else:
            results = diagnose(manager.home, timeout=import_timeout)
    except ManagerError as exc:
        report.health.update({"imports": [], "error": exc.message})
        return f"health check could not run: {exc.message}"
    report.health["imports"] = [{"name": h.name, "ok": h.ok, "error": h.error, "seconds": h.seconds}
                                for h in results]
    broken = [h for h in results if not h.ok]
    if broken:
        first = broken[0]
        return (f"health check: {len(broken)} pack(s) fail to import; {first.name}: "
                f"{(first.error or '').strip().splitlines()[-1] if first.error else 'unknown error'}")
    if smoke is None:
        return None
    if outcome is None:  # a home: a fresh partyflow process runs it
        step(f"health check: running {smoke.name}")
        outcome = run_smoke(manager.home, smoke, smoke_timeout)
    report.health["smoke"] = outcome
    return None if outcome["ok"] else f"smoke workflow {smoke.name} failed: {outcome['error']}"


def _api_workflow(path: Path, environment_name: str) -> dict[str, Any]:
    """A ComfyUI environment's smoke workflow, which ComfyUI's /prompt runs: API format ({id: {class_type,
    inputs}}). The UI format (nodes and links) is refused before anything changes."""
    document = _document(path)
    if not document or not all(isinstance(n, Mapping) and isinstance(n.get("class_type"), str)
                               for n in document.values()):
        raise PromotionError(f"{path}: environment {environment_name!r} is a ComfyUI install, which runs smoke "
                             "workflows in API format ({id: {class_type, inputs}}), and this file is not one",
                             user_error=True, hint="export the workflow with ComfyUI's 'Export (API)'")
    return dict(document)


def run_smoke(home: Home, workflow: Path, timeout: float) -> dict[str, Any]:
    """Run a workflow headless in a fresh process against `home` (`partyflow run --json`)."""
    command = [sys.executable, "-m", "partyflow", "--home", str(home.root), "run", str(workflow), "--json"]
    env = {k: v for k, v in os.environ.items() if k != "PARTYFLOW_HOME"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"ok": False, "exit_code": None, "error": f"did not finish within {timeout:.0f}s"}
    result: dict[str, Any] = {"ok": done.returncode == 0, "exit_code": done.returncode}
    try:
        data = json.loads(done.stdout)
        result["status"] = data.get("status")
        if data.get("error"):
            error = data["error"]
            result["error"] = f"node {error.get('node_id')} ({error.get('class_type')}): {error.get('message')}"
    except (json.JSONDecodeError, AttributeError):
        pass
    if not result["ok"] and "error" not in result:
        tail = (done.stderr or done.stdout).strip().splitlines()
        result["error"] = tail[-1] if tail else f"exit code {done.returncode}"
    return result


# ---- small helpers -----------------------------------------------------------------------------------------

def _comfyui(manager: Any) -> Any:
    """The ComfyUI install a manager acts on (`comfyui_target.ComfyUITarget`), or None for a home."""
    return getattr(manager.home, "target", None)


def _area(manager: Any) -> Path:
    """Where saved copies wait: on the same filesystem as custom_nodes, so a rollback is renames only, and not
    under staging, which every manager operation clears."""
    paths = manager.paths.ensure()
    staging = paths.staging
    return staging.parent / ("promotions" if staging == paths.root / "staging" else ".partyflow-promotions")


@contextlib.contextmanager
def _promotion_lock(area: Path) -> Iterator[None]:
    with open(area / "lock", "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PromotionError("another promotion into this environment is running", user_error=True,
                                 hint="wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _audit(manager: Any, action: str, report: PromotionReport, *, result: str = "ok", error: str | None = None,
           details: dict[str, Any] | None = None) -> None:
    with AuditLog(manager.home) as audit:
        audit.record(action, result=result, pack=None, source=report.source, error=error, actor=manager.actor,
                     details={"promotion_id": report.promotion_id, "environment": report.target,
                              "security_level": report.security_level, **(details or {})})
