"""Named environments (dev, test, prod, ...): where each one's packs live, how strict it is, whom it trusts.

An environment is a table of the controlling home's config.toml:

    [environments.dev]
    home = "/srv/partyflow-dev"           # a partyflow home ...
    [environments.prod]
    comfyui = "/opt/ComfyUI"              # ... or a ComfyUI install
    python = "/opt/ComfyUI/venv/bin/python"  # optional: the interpreter that ComfyUI runs in
    security_level = "strong"             # optional: the level promotions into it obey
    trusted_keys = ["0123456789abcdef"]   # optional: only these keys of its keyring may sign promotions
    require_signed = true                 # optional: refuse unsigned snapshots (default: true at "strong")

Relative paths are read from the folder of the config file. Everything that acts on an environment gets its
`PackManager` from `open_environment`, the one place that knows the kinds, so a ComfyUI target is only a different
constructor (`partyflow.manager.targets.open_manager`), not a different code path. Drift between two environments
(`diff`) compares packs by tree hash, version, enabled state and declared requirements.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from partyflow.config import ConfigError, Home, Settings
from partyflow.manager.errors import ManagerError

__all__ = ["EnvState", "Environment", "EnvError", "PackFacts", "diff", "environment", "environments",
           "managed_packs", "open_environment", "pack_hash", "state"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_KEYS = frozenset({"home", "comfyui", "python", "security_level", "trusted_keys", "require_signed", "description"})
_LEVELS = ("strong", "normal", "normal-", "weak")


class EnvError(ManagerError):
    """An environment that is not configured, is configured wrongly, or cannot be opened."""


@dataclass(frozen=True)
class Environment:
    """One configured environment."""

    name: str
    kind: str                                  # "home" | "comfyui"
    path: Path
    python: str | None = None
    security_level: str | None = None          # None: the environment's own configuration decides
    trusted_keys: tuple[str, ...] = ()         # empty: every key its keyring trusts
    require_signed: bool | None = None         # None: only at security level "strong"
    description: str = ""
    controller: Path | None = field(default=None, compare=False)  # the home whose config.toml defines it

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "path": str(self.path), "python": self.python,
                "security_level": self.security_level, "trusted_keys": list(self.trusted_keys),
                "require_signed": self.require_signed, "description": self.description,
                "exists": self.path.is_dir()}


def environments(home: Home) -> dict[str, Environment]:
    """Every `[environments.NAME]` table of the home's config.toml, validated (a bad one is a ConfigError)."""
    raw = Settings.load(home).raw.get("environments", {})
    where = home.config_file
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: [environments] must be a table of tables ([environments.NAME])")
    return {name: _parse(name, table, where) for name, table in sorted(raw.items())}


def environment(home: Home, name: str) -> Environment:
    """One environment by name; an unknown name is a user error listing the configured ones."""
    known = environments(home)
    if name not in known:
        listed = ", ".join(known) or "none configured"
        raise EnvError(f"no environment named {name!r} (configured: {listed})", user_error=True,
                               hint=f"add an [environments.{name}] table with home = \"PATH\" or comfyui = "
                                    f"\"PATH\" to {home.config_file}")
    return known[name]


def open_environment(env: Environment, **options: Any) -> Any:
    """The `PackManager` acting on `env` (options as PackManager's). The only place that knows the kinds.

    A ComfyUI environment is validated (`comfyui_target.open_target`: the folder is ComfyUI, its interpreter runs)
    and opened as a `TargetHome` whose settings fall back to the config.toml that defines the environment. Nothing
    of the shell leaks in: not $PARTYFLOW_COMFYUI_PYTHON (the interpreter is the table's `python`, else the
    install's own venv), not $PARTYFLOW_SECURITY_LEVEL (see `_configured_level`)."""
    from partyflow.manager.packs import PackManager

    if not env.path.is_dir():
        raise EnvError(f"environment {env.name!r}: {env.path} does not exist", user_error=True,
                               hint=f"create it (mkdir -p {env.path}) or fix the path in config.toml")
    if env.kind == "home":
        home = Home(env.path)
        options.setdefault("security_level", env.security_level or _configured_level(home))
        return PackManager(home, **options)
    from partyflow.manager.comfyui_target import open_target
    from partyflow.manager.target_home import TargetHome

    try:
        target = TargetHome.of(open_target(env.path, env.python), settings_home=env.controller)
    except ManagerError as exc:
        raise EnvError(f"environment {env.name!r}: {exc.message}", user_error=exc.user_error,
                       hint=exc.hint) from None
    options.setdefault("security_level", env.security_level or _configured_level(target))
    return PackManager(target, **options)


def _configured_level(home: Home) -> str:
    """The level an environment's home (for a ComfyUI install: its `user/__partyflow/config.toml`, else the
    config.toml that defines the environment) configures for itself (default normal). The shell's
    PARTYFLOW_SECURITY_LEVEL is deliberately not read: it belongs to whoever runs the command, not to the
    environment, and must not loosen prod for a promotion started from a dev shell."""
    raw = Settings.load(home).raw
    manager = raw.get("manager", {})
    value = raw.get("security_level")
    if value is None and isinstance(manager, Mapping):
        value = manager.get("security_level")
    if value is None:
        return "normal"
    if not isinstance(value, str) or value.strip().lower() not in _LEVELS:
        raise ConfigError(f"{home.config_file}: security_level must be one of {', '.join(_LEVELS)}, got {value!r}")
    return value.strip().lower()


def _parse(name: str, table: Any, where: Path) -> Environment:
    label = f"{where}: [environments.{name}]"
    if not _NAME.match(str(name)):
        raise ConfigError(f"{label}: an environment name is letters, digits, '-' and '_' (at most 64)")
    if not isinstance(table, Mapping):
        raise ConfigError(f"{label} must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(f"{label}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
    if ("home" in table) == ("comfyui" in table):
        raise ConfigError(f"{label}: give exactly one of home = \"PATH\" or comfyui = \"PATH\"")
    kind = "home" if "home" in table else "comfyui"
    path = _path(table[kind], f"{label} {kind}", where)
    python = table.get("python")
    if python is not None and (kind != "comfyui" or not isinstance(python, str) or not python):
        raise ConfigError(f"{label}: python = \"PATH\" belongs to a comfyui environment (a home's interpreter "
                          "is set by its own config)")
    level = table.get("security_level")
    if level is not None and (not isinstance(level, str) or level.strip().lower() not in _LEVELS):
        raise ConfigError(f"{label}: security_level must be one of {', '.join(_LEVELS)}, got {level!r}")
    keys = table.get("trusted_keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) and _KEY_ID.match(k.lower()) for k in keys):
        raise ConfigError(f"{label}: trusted_keys must be a list of 16-hex-digit key ids "
                          "(as 'partyflow keys list' shows them)")
    signed = table.get("require_signed")
    if signed is not None and not isinstance(signed, bool):
        raise ConfigError(f"{label}: require_signed must be true or false")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{label}: description must be a string")
    return Environment(name=str(name), kind=kind, path=path,
                       python=str(_path(python, f"{label} python", where)) if python else None,
                       security_level=level.strip().lower() if level else None,
                       trusted_keys=tuple(k.lower() for k in keys), require_signed=signed, description=description,
                       controller=where.parent)


def _path(value: Any, label: str, where: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{label} must be a non-empty path")
    path = Path(value).expanduser()
    return (path if path.is_absolute() else where.parent / path).resolve()


# ---- state and drift ---------------------------------------------------------------------------------------

# ComfyUI-Manager's `.tracking` (the file list of a registry archive) is bookkeeping that partyflow writes into
# registry packs it installs into a ComfyUI, and not into a home: the same pack must compare equal in both.
BOOKKEEPING = frozenset({".tracking"})


def pack_hash(path: Path) -> str:
    """A pack's content as environments compare it: its tree hash without tools' bookkeeping files."""
    from partyflow.manager.provenance import tree_hash

    return tree_hash(path, ignore=BOOKKEEPING)


def managed_packs(manager: Any) -> list[Any]:
    """The packs an environment is made of: every installed pack, except, in a ComfyUI install, the files that
    ComfyUI itself ships in custom_nodes/ (they belong to the ComfyUI version, not to the environment's set, so
    drift never reports them and a promotion never removes them)."""
    target = getattr(manager.home, "target", None)
    if target is None:
        return list(manager.installed())
    from partyflow.manager.comfyui_target import ships_with_comfyui

    return [p for p in manager.installed() if not (p.record is None and ships_with_comfyui(target, p.path))]


@dataclass(frozen=True)
class PackFacts:
    """What drift detection compares about one pack."""

    name: str
    enabled: bool
    content_hash: str
    version: str | None = None
    commit: str | None = None
    source: str | None = None
    requirements: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "enabled": self.enabled, "content_hash": self.content_hash,
                "version": self.version, "commit": self.commit, "source": self.source,
                "requirements": list(self.requirements)}


@dataclass(frozen=True)
class EnvState:
    name: str
    packs: Mapping[str, PackFacts]
    python: Mapping[str, str] = field(default_factory=dict)   # installed packages; empty unless asked for


def state(name: str, manager: Any, *, python: bool = False) -> EnvState:
    """The packs of the environment `manager` acts on (and, with `python`, its interpreter's packages)."""
    from partyflow.manager.dependencies import DependencyError, read_requirements

    packs: dict[str, PackFacts] = {}
    for pack in managed_packs(manager):
        record = pack.record
        try:
            requirements = tuple(sorted(read_requirements(pack.path)[0])) if pack.path.is_dir() else ()
        except DependencyError as exc:
            requirements = (f"(unreadable: {exc.message})",)
        packs[pack.name] = PackFacts(
            name=pack.name, enabled=pack.enabled, content_hash=pack_hash(pack.path),
            version=record.version if record else None, commit=record.commit if record else None,
            source=record.source.describe() if record else None, requirements=requirements)
    installed: dict[str, str] = {}
    if python:
        from partyflow.manager.dependencies import installed_packages, target_python

        installed = installed_packages(target_python(manager.home))
    return EnvState(name, packs, installed)


@dataclass(frozen=True)
class Drift:
    """How two environments differ; `different` is what the exit code reports."""

    a: str
    b: str
    only_in_a: tuple[str, ...]
    only_in_b: tuple[str, ...]
    changed: tuple[dict[str, Any], ...]         # per pack: name and the fields that differ, with both values
    python: dict[str, Any]

    @property
    def different(self) -> bool:
        return bool(self.only_in_a or self.only_in_b or self.changed or any(self.python.values()))

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "different": self.different, "only_in_a": list(self.only_in_a),
                "only_in_b": list(self.only_in_b), "changed": list(self.changed), "python": self.python}


_COMPARED = ("content_hash", "version", "commit", "enabled", "requirements")


def diff(a: EnvState, b: EnvState) -> Drift:
    """Packs missing on either side; for shared packs every compared field that differs (content first). A git
    pack's version is its ref's name on one side and the pinned commit on the other after a promotion (promotions
    install the exact commit): with the same commit, the version label is not drift."""
    changed: list[dict[str, Any]] = []
    for name in sorted(set(a.packs) & set(b.packs)):
        left, right = a.packs[name], b.packs[name]
        same_commit = left.commit is not None and left.commit == right.commit
        fields = {f: {"a": _plain(getattr(left, f)), "b": _plain(getattr(right, f))} for f in _COMPARED
                  if getattr(left, f) != getattr(right, f) and not (f == "version" and same_commit)}
        if fields:
            changed.append({"name": name, "fields": fields})
    python: dict[str, Any] = {"only_in_a": {}, "only_in_b": {}, "changed": {}}
    if a.python or b.python:
        python = {"only_in_a": {k: v for k, v in sorted(a.python.items()) if k not in b.python},
                  "only_in_b": {k: v for k, v in sorted(b.python.items()) if k not in a.python},
                  "changed": {k: {"a": v, "b": b.python[k]} for k, v in sorted(a.python.items())
                              if k in b.python and b.python[k] != v}}
    return Drift(a.name, b.name, tuple(sorted(set(a.packs) - set(b.packs))),
                 tuple(sorted(set(b.packs) - set(a.packs))), tuple(changed), python)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
