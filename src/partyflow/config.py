"""Settings and the home directory layout.

Settings come, in rising precedence, from defaults, the home's `config.toml`, `PARTYFLOW_*` environment
variables and explicit arguments (the CLI's flags). The home holds everything partyflow writes, so that file
access can be confined to it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOME_ENV = "PARTYFLOW_HOME"
DEFAULT_HOME = Path("~/.partyflow")


class ConfigError(ValueError):
    """A config file or setting that cannot be used; the message names the file and the key."""


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The home directory: the argument, else `$PARTYFLOW_HOME`, else `~/.partyflow`."""
    chosen = home if home is not None else os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class Home:
    """The directories of one partyflow home (ComfyUI-Manager's conventions for node packs)."""

    root: Path

    @property
    def custom_nodes(self) -> Path:
        return self.root / "custom_nodes"

    @property
    def disabled_nodes(self) -> Path:
        return self.custom_nodes / ".disabled"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def input(self) -> Path:
        return self.root / "input"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def temp(self) -> Path:
        return self.root / "temp"

    @property
    def user(self) -> Path:
        return self.root / "user"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def bundles(self) -> Path:
        return self.root / "bundles"

    @property
    def wheelhouse(self) -> Path:
        return self.root / "wheelhouse"

    @property
    def state_db(self) -> Path:
        return self.root / "state.sqlite"

    @property
    def config_file(self) -> Path:
        return self.root / "config.toml"

    def ensure(self) -> Home:
        """Create the layout; idempotent."""
        for path in (self.custom_nodes, self.models / "llm", self.models / "gguf", self.models / "embeddings",
                     self.input, self.output, self.temp, self.user):
            path.mkdir(parents=True, exist_ok=True)
        return self

    def confine(self, base: Path, relative: str | os.PathLike[str]) -> Path:
        """Join `relative` under `base` (one of this home's directories) and refuse any escape from it."""
        base = base.resolve()
        target = (base / relative).resolve()
        if target != base and base not in target.parents:
            raise PermissionError(f"path {str(relative)!r} leaves the allowed directory {base}")
        return target


@dataclass(frozen=True)
class Settings:
    """Engine settings; every field can come from config.toml's `[engine]` table or `PARTYFLOW_<FIELD>`."""

    cache: str = "classic"            # none | classic | lru:N
    max_workers: int = 64             # worker threads for sync node functions
    max_history: int = 10_000
    max_string_length: int = 10_000_000
    pack_import_timeout: float = 120.0  # real packs take 30-35 s to import on 2 cores (issue 20)
    extra_node_paths: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)  # the whole parsed config.toml, for other layers

    @classmethod
    def load(cls, home: Home, overrides: Mapping[str, Any] | None = None) -> Settings:
        raw = _read_toml(home.config_file)
        values: dict[str, Any] = dict(raw.get("engine", {}))
        for name in ("cache", "max_workers", "max_history", "max_string_length", "pack_import_timeout"):
            env = os.environ.get(f"PARTYFLOW_{name.upper()}")
            if env is not None:
                values[name] = env
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls(
            cache=str(values.get("cache", cls.cache)),
            max_workers=_int(values, "max_workers", cls.max_workers),
            max_history=_int(values, "max_history", cls.max_history),
            max_string_length=_int(values, "max_string_length", cls.max_string_length),
            pack_import_timeout=_float(values, "pack_import_timeout", cls.pack_import_timeout),
            extra_node_paths=tuple(str(p) for p in values.get("extra_node_paths", ())),
            raw=raw,
        )


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix or remove the file") from exc


def _int(values: Mapping[str, Any], key: str, default: int) -> int:
    try:
        return int(values.get(key, default))
    except (TypeError, ValueError):
        raise ConfigError(f"setting {key!r} must be an integer, got {values[key]!r}") from None


def _float(values: Mapping[str, Any], key: str, default: float) -> float:
    try:
        return float(values.get(key, default))
    except (TypeError, ValueError):
        raise ConfigError(f"setting {key!r} must be a number, got {values[key]!r}") from None
