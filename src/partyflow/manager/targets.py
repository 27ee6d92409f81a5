"""Which installation a manager command acts on: a partyflow home, or a ComfyUI install (issue 14, item 1).

The choice, in falling precedence: the arguments (the CLI's global `--comfyui PATH [--comfyui-python PY]`), then
`$PARTYFLOW_COMFYUI` / `$PARTYFLOW_COMFYUI_PYTHON`, then the `[target]` table of the home's config.toml
(`comfyui = "PATH"`, `python = "..."`), else the home itself. A ComfyUI target is validated before anything acts on
it (`comfyui_target.open_target`): a folder that is not ComfyUI, or an interpreter that does not run, is refused
with a ManagerError and nothing is created.

`open_manager` is the one entry point other code (environments, the server) uses to get a PackManager for either.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from partyflow.config import ConfigError, Home, Settings, resolve_home
from partyflow.manager.comfyui_target import open_target
from partyflow.manager.errors import ManagerError
from partyflow.manager.target_home import TargetHome

__all__ = ["COMFYUI_ENV", "COMFYUI_PYTHON_ENV", "TargetHome", "is_comfyui", "open_manager", "resolve"]

COMFYUI_ENV = "PARTYFLOW_COMFYUI"
COMFYUI_PYTHON_ENV = "PARTYFLOW_COMFYUI_PYTHON"


def resolve(home: Home | str | os.PathLike[str] | None = None, comfyui: str | os.PathLike[str] | None = None,
            python: str | os.PathLike[str] | None = None) -> Home:
    """The Home a command acts on: a validated `TargetHome` when a ComfyUI is chosen, else the partyflow home."""
    if isinstance(home, TargetHome):
        return home
    base = home if isinstance(home, Home) else Home(resolve_home(home))
    if comfyui is None:
        comfyui = os.environ.get(COMFYUI_ENV) or None
        python = python or os.environ.get(COMFYUI_PYTHON_ENV) or None
    if comfyui is None:
        table = Settings.load(base).raw.get("target", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{base.config_file}: [target] must be a table (comfyui = \"PATH\", python = \"...\")")
        if table.get("comfyui"):
            comfyui = _relative_to(base, str(table["comfyui"]))
            python = python or (_relative_to(base, str(table["python"]), command=True) if table.get("python")
                                else None)
        elif table.get("python"):
            raise ConfigError(f"{base.config_file}: [target] sets python but not comfyui")
    elif python is None:
        python = os.environ.get(COMFYUI_PYTHON_ENV) or None
    if comfyui is None:
        if python is not None:
            raise ManagerError("--comfyui-python needs --comfyui (the ComfyUI install it runs)", user_error=True)
        return base
    return TargetHome.of(open_target(comfyui, python), settings_home=base.root)


def open_manager(home: Home | str | os.PathLike[str] | None = None, comfyui: str | os.PathLike[str] | None = None,
                 python: str | os.PathLike[str] | None = None, **options: Any) -> Any:
    """A `PackManager` for the chosen installation (see `resolve`); `options` go to PackManager (progress,
    security_level, trusted, ...). Raises ManagerError for a ComfyUI path or interpreter that cannot be used."""
    from partyflow.manager.packs import PackManager

    return PackManager(resolve(home, comfyui, python), **options)


def is_comfyui(home: Home) -> bool:
    return isinstance(home, TargetHome)


def _relative_to(home: Home, value: str, *, command: bool = False) -> str:
    """Paths in config.toml are relative to the home that holds it; a bare command name (`python3.11`) stays one."""
    if command and "/" not in value and not value.startswith("~"):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else home.root / path)
