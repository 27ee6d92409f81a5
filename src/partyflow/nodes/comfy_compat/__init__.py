"""ComfyUI's host modules (`folder_paths`, `server`, `comfy.utils`, ...) answered by partyflow.

Packs import these by their ComfyUI names. `install_compat_modules()` makes those names resolve to the
modules in this package by aliasing them in `sys.modules` only: nothing is written to site-packages, and a
module of that name that is already loaded from elsewhere is left alone, so inside a real ComfyUI its own
modules win. Every module here reads the engine it serves from `current_host()` / `current_scope()`, so two
engines in one process each see their own home.
"""

from __future__ import annotations

import importlib
import logging
import sys

__all__ = ["COMFY_MODULE_NAMES", "install_compat_modules"]

logger = logging.getLogger(__name__)

# ComfyUI name -> our module; parents come before their children.
_ALIASES: dict[str, str] = {
    "folder_paths": f"{__name__}.folder_paths",
    "server": f"{__name__}.server",
    "comfy": f"{__name__}.comfy",
    "comfy.utils": f"{__name__}.comfy.utils",
    "comfy.model_management": f"{__name__}.comfy.model_management",
    "comfy_execution": f"{__name__}.comfy_execution",
    "comfy_execution.graph_utils": f"{__name__}.comfy_execution.graph_utils",
    "comfy_execution.graph": f"{__name__}.comfy_execution.graph",
    "nodes": f"{__name__}.nodes",
}

COMFY_MODULE_NAMES: tuple[str, ...] = tuple(_ALIASES)


def install_compat_modules() -> None:
    """Alias our host modules under ComfyUI's names where those names are free; idempotent."""
    for alias, target in _ALIASES.items():
        module = importlib.import_module(target)
        present = sys.modules.get(alias)
        if present is module:
            continue
        if present is not None:
            logger.debug("keeping the already loaded module %r (%s)", alias, getattr(present, "__file__", "?"))
            continue
        parent = alias.rpartition(".")[0]
        if parent and sys.modules.get(parent) is not importlib.import_module(_ALIASES[parent]):
            continue  # never hang our submodule under somebody else's package
        sys.modules[alias] = module
