"""`nodes doctor` and `nodes fix`: find packs that do not load and why, and repair their dependencies.

Each pack is imported in its own child process, so one that crashes or hangs cannot hide the others' results;
packs are checked in parallel. Diagnosing must not change the system, so the import runs in the OS sandbox
(`partyflow.security.sandbox`, as code tools do): no network, nothing writable but a throwaway folder, a throwaway
home instead of the real one. A pack that runs `pip install` or `apt-get` or writes files at import changes
nothing, and the report says what it tried. Without the sandbox, doctor refuses to import anything.
A failed import is explained by comparing the pack's declared requirements with the environment, the most common
cause after a Python upgrade or a manual `pip install`.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from partyflow.config import Home
from partyflow.manager.audit import AuditLog
from partyflow.manager.dependencies import (
    DependencyError,
    DependencyReport,
    install_for_pack,
    installed_packages,
    missing_requirements,
    target_python,
)
from partyflow.manager.errors import ManagerError
from partyflow.manager.verify import Attempt

_NO_MODULE = re.compile(r"No module named '([^']+)'")
_NO_NAME = re.compile(r"cannot import name '([^']+)' from '([^']+)'")
# ComfyUI's own modules: a pack that misses one needs a host name partyflow lacks, not a pip requirement
_HOST_ROOTS = frozenset({"comfy", "comfy_extras", "comfy_api", "comfy_execution", "comfy_config", "folder_paths",
                         "server", "nodes", "execution", "latent_preview", "node_helpers", "app", "comfyui_version",
                         "cuda_malloc", "protocol", "main", "new_updater", "hook_breaker_ac10a0", "utils"})
_COMPAT_PACKAGE = "partyflow.nodes.comfy_compat."


def _host_name(error: str) -> str | None:
    """The ComfyUI host name an import error is about (`comfy.diffusers_convert`, `nodes.Foo`), if it is one."""
    missing = _NO_MODULE.search(error)
    if missing and missing.group(1).split(".")[0] in _HOST_ROOTS:
        return missing.group(1)
    name = _NO_NAME.search(error)
    if name:
        module = name.group(2)
        module = module[len(_COMPAT_PACKAGE):] if module.startswith(_COMPAT_PACKAGE) else module
        if module.split(".")[0] in _HOST_ROOTS:
            return f"{module}.{name.group(1)}"
    return None


@dataclass(frozen=True)
class PackHealth:
    name: str
    enabled: bool
    ok: bool
    seconds: float | None = None
    node_types: tuple[str, ...] = ()
    error: str | None = None
    missing_module: str | None = None
    missing_requirements: tuple[str, ...] = ()
    hints: tuple[str, ...] = field(default=())
    attempts: tuple[Attempt, ...] = ()  # what the pack tried at import (processes, network, writes); none happened

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "enabled": self.enabled, "ok": self.ok, "seconds": self.seconds,
                "node_types": list(self.node_types), "error": self.error, "missing_module": self.missing_module,
                "missing_requirements": list(self.missing_requirements), "hints": list(self.hints),
                "attempts": [a.to_dict() for a in self.attempts]}


def diagnose(home: Home, *, include_disabled: bool = False, timeout: float = 60.0,
             workers: int | None = None) -> list[PackHealth]:
    """Import every enabled pack (and disabled ones on request) in a sandboxed subprocess; report failures, missing
    dependencies, import time and what each pack tried to do. Refuses (ManagerError) without the OS sandbox."""
    from partyflow.manager.packs import PackManager
    from partyflow.security.sandbox import SandboxUnavailable, check

    try:
        check()
    except SandboxUnavailable as exc:
        raise ManagerError(f"nodes doctor imports packs only inside the OS sandbox, so that a pack's import-time "
                           f"installs or writes change nothing; {exc}", user_error=True) from None

    packs = [p for p in PackManager(home).installed() if p.enabled or include_disabled]
    installed = installed_packages(target_python(home))

    def check(pack: Any) -> PackHealth:
        return _check(pack, home, installed, timeout)

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 2)) as pool:
        return list(pool.map(check, packs))


def fix(name: str, home: Home, *, allow_conflicts: bool = False) -> DependencyReport:
    """Reinstall a pack's dependencies (uv's/pip's reinstall), refusing conflicts as an install would;
    recorded in the audit log."""
    from partyflow.manager.packs import PackManager

    pack = PackManager(home).info(name)
    with AuditLog(home) as audit:
        if pack.single_file:
            audit.record("fix", result="unchanged", pack=pack.name, details={"message": "single-file pack"})
            return DependencyReport(pack=pack.name, python=target_python(home), tool="")
        try:
            report = install_for_pack(pack.path, home=home, allow_conflicts=allow_conflicts, reinstall=True)
        except ManagerError as exc:
            audit.record("fix", result="refused" if exc.user_error else "failed", pack=pack.name, error=str(exc))
            raise
        audit.record("fix", result="ok", pack=pack.name, details=report.to_dict())
    return report


def _attempt_hints(attempts: tuple[Attempt, ...], shown: int = 5) -> list[str]:
    if not attempts:
        return []
    listed = "; ".join(a.describe() for a in attempts[:shown])
    more = f"; and {len(attempts) - shown} more (--json lists them)" if len(attempts) > shown else ""
    hints = [f"at import the pack tried (none of it happened in this check): {listed}{more}"]
    installs = [a for a in attempts if a.package_manager]
    if installs:
        hints.append("it runs a package manager at import: install its dependencies with 'partyflow nodes fix' "
                     "instead, and consider removing the pack")
    return hints


def _own_venv(pack: Any, home: Home) -> Any:
    """An isolated pack's environment (its imports resolve there), or None for packs of the host's environment."""
    from partyflow.nodes.isolation.environment import python_of, venv_dir

    if pack.record is None or not getattr(pack.record, "isolated", False):
        return None
    venv = venv_dir(home.root, pack.name)
    return venv if python_of(venv).exists() else None


def _check(pack: Any, home: Home, installed: dict[str, str], timeout: float) -> PackHealth:
    from partyflow.manager.verify import VerifyError, VerifyFailed, verify_pack

    try:
        missing = tuple(missing_requirements(pack.path, installed)) if pack.path.is_dir() else ()
    except DependencyError as exc:
        missing = (f"(requirements unreadable: {exc})",)
    try:
        verified = verify_pack(pack.path, home.root, timeout=timeout, sandboxed=True, venv=_own_venv(pack, home))
    except VerifyError as exc:
        error = str(exc)
        module = _NO_MODULE.search(error)
        host = _host_name(error)
        installable = [m for m in missing if not m.startswith("(requirements unreadable")]
        attempts = exc.attempts if isinstance(exc, VerifyFailed) else ()
        hints = _attempt_hints(attempts)
        if host:
            hints.append(f"the pack needs ComfyUI's {host!r}, which partyflow does not provide as a host module "
                         "(docs/node-packs.md lists what it provides); no requirement can install it")
        elif installable:
            hints.append(f"run 'partyflow nodes fix {pack.name}' to install: {', '.join(installable)}")
        elif module:
            hints.append(f"the pack imports {module.group(1)!r} but does not declare it in requirements.txt")
        return PackHealth(pack.name, pack.enabled, False, error=error,
                          missing_module=module.group(1) if module else None, missing_requirements=missing,
                          hints=tuple(hints), attempts=attempts)
    hints = ([f"declared but not installed: {', '.join(missing)}"] if missing else []) + \
        _attempt_hints(verified.attempts)
    return PackHealth(pack.name, pack.enabled, True, seconds=verified.seconds, node_types=verified.node_types,
                      missing_requirements=missing, hints=tuple(hints), attempts=verified.attempts)
