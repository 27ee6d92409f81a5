"""Security levels, enforced in one place: which sources, unsigned packs, scan results, install.py and arbitrary
pip installs each level allows, for whom.

Everything that installs (the CLI, the Python API, the server) asks a `SecurityPolicy`; nothing else decides.
Two kinds of caller: a *trusted* one (a local administrator's explicit command, `PackManager(trusted=True)`) and
an *untrusted* one (the HTTP API, `trusted=False`), to which ComfyUI-Manager's risk table applies unchanged
(`security.levels.allowed`). The table of levels, per the design:

| level   | trusted sources                 | untrusted (server) sources        | unsigned | refuse scan at | --force | install.py |
|---------|---------------------------------|-----------------------------------|----------|----------------|---------|------------|
| strong  | catalog                         | none (middle risk refused)        | refused  | high           | no      | never      |
| normal  | catalog, path, archive, git, url| catalog                           | allowed  | high           | yes     | no         |
| normal- | all                             | catalog; path/archive/git on loopback | allowed | high        | yes     | yes        |
| weak    | all                             | all (loopback) / most (remote)    | allowed  | critical       | yes     | yes        |

`--force` is honoured only for trusted callers and never at `strong`. The level comes from, highest first: an
explicit override (`--security-level`), `PARTYFLOW_SECURITY_LEVEL`, `PARTYFLOW_MANAGER_SECURITY_LEVEL` (older
name), config.toml's top-level `security_level`, then `[manager] security_level`; default `normal`.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from partyflow.config import ConfigError, Home, Settings
from partyflow.errors import OperationError
from partyflow.security.levels import LEVEL_ENV, MANAGER_LEVEL_ENV, Risk, SecurityLevel, allowed
from partyflow.security.scanner.model import ScanReport, Severity

__all__ = ["CODE_TOOLS_SETTING", "LEVEL_ENV", "Caller", "code_tools_decision", "Decision", "LevelRules", "Origin", "PolicyRefusal", "SecurityPolicy",
           "SignatureStatus", "enforce_staged", "parse_level", "resolve_level", "server_allows_code_tools"]

CODE_TOOLS_SETTING = "[server] allow_code_tools = true"
"""The config.toml setting that lets a server's HTTP clients run workflows with code-running tools."""


class Origin(enum.Enum):
    """Where a pack (or package) comes from, as far as trust is concerned."""

    CATALOG = "catalog"
    PATH = "path"        # a local folder or .py file
    ARCHIVE = "archive"  # a local zip/tar
    GIT = "git"          # any git URL
    URL = "url"          # an http(s) download
    PIP = "pip"          # an arbitrary pip package

    @classmethod
    def of(cls, kind: str, *, catalog: bool) -> Origin:
        """Map a SourceSpec kind; a catalog entry is CATALOG whatever its transport."""
        if catalog:
            return cls.CATALOG
        return {"dir": cls.PATH, "archive": cls.ARCHIVE, "git": cls.GIT, "url": cls.URL}.get(kind, cls.URL)


_RISK = {Origin.CATALOG: Risk.MIDDLE, Origin.PATH: Risk.HIGH, Origin.ARCHIVE: Risk.HIGH,
         Origin.GIT: Risk.HIGH_PLUS, Origin.URL: Risk.HIGH_PLUS, Origin.PIP: Risk.HIGH_PLUS}


@dataclass(frozen=True)
class Caller:
    """Who asks. `trusted`: a local administrator's explicit command; `loopback`: a server bound to 127.0.0.1."""

    trusted: bool = True
    loopback: bool = True
    personal_cloud: bool = False

    @property
    def label(self) -> str:
        return "local administrator" if self.trusted else ("local server client" if self.loopback
                                                           else "remote server client")


@dataclass(frozen=True)
class LevelRules:
    trusted_origins: frozenset[Origin]
    require_signature: bool
    refuse_at: Severity
    force_allowed: bool


_ALL = frozenset(Origin)
RULES: MappingProxyType[SecurityLevel, LevelRules] = MappingProxyType({
    SecurityLevel.STRONG: LevelRules(frozenset({Origin.CATALOG}), True, Severity.HIGH, False),
    SecurityLevel.NORMAL: LevelRules(_ALL - {Origin.PIP}, False, Severity.HIGH, True),
    SecurityLevel.NORMAL_MINUS: LevelRules(_ALL, False, Severity.HIGH, True),
    SecurityLevel.WEAK: LevelRules(_ALL, False, Severity.CRITICAL, True),
})


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    hint: str | None = None


@dataclass(frozen=True)
class SignatureStatus:
    """What a pack's signature (or the signed container it came in) establishes. The policy only judges it; the
    manager, which owns keys and signature checking, computes it (`manager.signing.pack_signature_status`).

    "invalid": a broken signature, evidence of tampering, refused at every level. "unsigned": none, or one by a
    key nobody trusts, refused only where signatures are required."""

    state: str                 # signed | unsigned | invalid
    signer: str | None = None
    reason: str = ""

    @property
    def signed(self) -> bool:
        return self.state == "signed"

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "signer": self.signer, "reason": self.reason}


class PolicyRefusal(OperationError):
    """A refusal by the security policy; `details` go to the audit log with it.

    An `OperationError`, which the manager knows as `ManagerError`: every interface that catches the manager's
    errors renders a refusal the same way (a user error: exit code 2, a 4xx), without this module knowing the
    manager."""

    def __init__(self, message: str, *, pack: str | None = None, hint: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message, pack=pack, hint=hint, user_error=True)
        self.details = details or {}


def parse_level(raw: str | SecurityLevel, where: str = "security_level") -> SecurityLevel:
    if isinstance(raw, SecurityLevel):
        return raw
    try:
        return SecurityLevel(str(raw).strip().lower())
    except ValueError:
        valid = ", ".join(level.value for level in SecurityLevel)
        raise ConfigError(f"{where} must be one of {valid}, got {raw!r}") from None


def resolve_level(home: Home, override: str | SecurityLevel | None = None) -> SecurityLevel:
    """The level in force for `home` (see the module docstring for the order)."""
    if override is not None:
        return parse_level(override, "--security-level")
    for name in (LEVEL_ENV, MANAGER_LEVEL_ENV):
        if os.environ.get(name):
            return parse_level(os.environ[name], name)
    raw = Settings.load(home).raw
    if raw.get("security_level") is not None:
        return parse_level(raw["security_level"], f"{home.config_file}: security_level")
    manager = raw.get("manager", {})
    if isinstance(manager, dict) and manager.get("security_level") is not None:
        return parse_level(manager["security_level"], "[manager] security_level")
    return SecurityLevel.NORMAL


@dataclass(frozen=True)
class SecurityPolicy:
    """The decisions of one level. Pure: no I/O, so every interface gets the same answers."""

    level: SecurityLevel = SecurityLevel.NORMAL

    @classmethod
    def load(cls, home: Home, override: str | SecurityLevel | None = None) -> SecurityPolicy:
        return cls(resolve_level(home, override))

    @property
    def rules(self) -> LevelRules:
        return RULES[self.level]

    def _hint(self) -> str:
        return "ask an administrator, or set security_level in config.toml (see 'partyflow scan --help')"

    def source(self, origin: Origin, caller: Caller) -> Decision:
        what = f"installing from {origin.value} sources"
        if not caller.trusted:
            ok = allowed(_RISK[origin], self.level, loopback=caller.loopback, personal_cloud=caller.personal_cloud)
        else:
            ok = origin in self.rules.trusted_origins
        if ok:
            return Decision(True, f"{what} is allowed for a {caller.label} at {self.level.value!r}")
        return Decision(False, f"{what} is not allowed at security level {self.level.value!r} for a {caller.label}",
                        "use a configured catalog" if origin is not Origin.CATALOG else self._hint())

    def signature(self, status: SignatureStatus, caller: Caller) -> Decision:
        if status.signed:
            return Decision(True, f"signed by {status.signer}")
        if status.state == "invalid":
            return Decision(False, f"the pack's signature does not check out: {status.reason}",
                            "do not use this copy; get the pack again from its publisher")
        if self.rules.require_signature:
            return Decision(False, f"security level {self.level.value!r} refuses {status.state} packs"
                            + (f" ({status.reason})" if status.reason else ""),
                            "install a pack signed by a trusted key ('partyflow keys trust')")
        return Decision(True, f"{status.state} pack allowed at {self.level.value!r}")

    def scan(self, report: ScanReport, caller: Caller, *, force: bool = False) -> Decision:
        blocking = report.at_or_above(self.rules.refuse_at)
        if not blocking:
            return Decision(True, f"no finding at or above {self.rules.refuse_at.label}")
        worst = blocking[0]
        text = f"{len(blocking)} finding(s) at or above {self.rules.refuse_at.label}; worst: " \
               f"{worst.severity.label} {worst.rule_id} {worst.location}: {worst.message}"
        if force and caller.trusted and self.rules.force_allowed:
            return Decision(True, f"forced past {text}")
        hint = "review with 'partyflow scan'; pass --force to install anyway" if caller.trusted and \
            self.rules.force_allowed else f"security level {self.level.value!r} does not allow overriding the scan"
        return Decision(False, f"the security scan refused it: {text}", hint)

    def install_script(self, caller: Caller) -> Decision:
        ok = allowed(Risk.HIGH_PLUS, self.level, loopback=caller.trusted or caller.loopback,
                     personal_cloud=caller.personal_cloud)
        if ok:
            return Decision(True, "install.py may run")
        return Decision(False, f"security level {self.level.value!r} does not allow running install.py",
                        "set security_level = \"normal-\" in config.toml if you trust this pack, or pass "
                        "--skip-install-script")

    def pip(self, caller: Caller) -> Decision:
        return self.source(Origin.PIP, caller)

    def manage(self, caller: Caller, action: str) -> Decision:
        """Update, uninstall, restore: middle risk for untrusted callers; a local administrator may always."""
        if caller.trusted or allowed(Risk.MIDDLE, self.level, loopback=caller.loopback,
                                     personal_cloud=caller.personal_cloud):
            return Decision(True, f"{action} allowed")
        return Decision(False, f"{action} is not allowed at security level {self.level.value!r} for a "
                        f"{caller.label}", self._hint())

    def code_tools(self, caller: Caller, *, server_allows: bool = False) -> Decision:
        """May a workflow use tools that run code or commands it supplies (the Python Code Tool, inline MCP
        server commands)?

        The code runs in the OS sandbox either way; this decides who may make partyflow run code at all.
        `strong`: nobody. `normal`: the local user (CLI, Python API); HTTP clients only where config.toml says
        `[server] allow_code_tools = true`. `normal-`: also clients of a loopback server. `weak`: everyone.
        """
        what = "code-running tools (the Python Code Tool, MCP servers started from a command in the workflow)"
        if self.level is SecurityLevel.STRONG:
            return Decision(False, f"{what} are off at security level 'strong'",
                            "set security_level = \"normal\" in config.toml to allow them for local runs")
        if caller.trusted or server_allows or self.level is SecurityLevel.WEAK or (
                self.level is SecurityLevel.NORMAL_MINUS and caller.loopback):
            return Decision(True, f"{what} allowed for a {caller.label} at {self.level.value!r}")
        return Decision(False, f"{what} are refused for workflows submitted over HTTP at security level "
                        f"{self.level.value!r}",
                        f"an administrator can allow them for this server with {CODE_TOOLS_SETTING} in config.toml "
                        "(the code still runs in the OS sandbox)")

    def require(self, decision: Decision, *, pack: str | None = None,
                details: dict[str, Any] | None = None) -> None:
        if not decision.allowed:
            raise PolicyRefusal(decision.reason, pack=pack, hint=decision.hint, details=details)

    def describe(self) -> dict[str, Any]:
        rules = self.rules
        return {"level": self.level.value, "trusted_origins": sorted(o.value for o in rules.trusted_origins),
                "require_signature": rules.require_signature, "refuse_at": rules.refuse_at.label,
                "force_allowed": rules.force_allowed,
                "install_script": self.install_script(Caller()).allowed}


def code_tools_decision(home: Home, *, over_http: bool, loopback: bool = True,
                        security_level: str | SecurityLevel | None = None) -> Decision:
    """`SecurityPolicy.code_tools` for a prompt run in `home`: submitted over HTTP (to a server on loopback or
    not, with that server's level override) or by the local user."""
    policy = SecurityPolicy.load(home, security_level)
    caller = Caller(trusted=not over_http, loopback=loopback)
    return policy.code_tools(caller, server_allows=over_http and server_allows_code_tools(home))


def server_allows_code_tools(home: Home) -> bool:
    """config.toml's `[server] allow_code_tools` (default false); anything but a boolean is an error."""
    server = Settings.load(home).raw.get("server", {})
    value = server.get("allow_code_tools", False) if isinstance(server, dict) else False
    if not isinstance(value, bool):
        raise ConfigError(f"{home.config_file}: [server] allow_code_tools must be true or false, got {value!r}")
    return value


def enforce_staged(policy: SecurityPolicy, pack: Path, *, home: Home, caller: Caller, origin: Origin,
                   pack_signature: SignatureStatus, force: bool = False, name: str | None = None,
                   signature: SignatureStatus | None = None) -> dict[str, Any]:
    """The gate between fetching a pack and running anything of it (dependencies, install.py, the import check):
    signature, then scan. Returns what the audit log keeps; raises PolicyRefusal (with the same details) to refuse.

    `pack_signature`: the pack's own signature, as the manager verified it against the home's keyring
    (`manager.signing.pack_signature_status`); required, so no caller can forget to check it.
    `signature`: what the container the pack came in established (a verified signed bundle or snapshot); it
    stands in for a pack that carries no signature of its own, never for one whose own signature is broken.
    """
    from partyflow.security.scanner import scan  # the scanner's rules load only when something is installed

    status = pack_signature
    if signature is not None and status.state == "unsigned":
        status = signature
    details: dict[str, Any] = {"security_level": policy.level.value, "caller": caller.label,
                               "origin": origin.value, "signature": status.to_dict()}
    policy.require(policy.signature(status, caller), pack=name, details=details)
    report = scan(pack, home=home)
    details["scan"] = report.summary()
    decision = policy.scan(report, caller, force=force)
    details["scan_decision"] = decision.reason
    policy.require(decision, pack=name, details=details)
    if force and report.at_or_above(policy.rules.refuse_at):
        details["forced"] = True
    return details
