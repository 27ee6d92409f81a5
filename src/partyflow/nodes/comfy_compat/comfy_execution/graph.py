"""ComfyUI's `comfy_execution.graph`: `ExecutionBlocker`, and `DynamicPrompt` from partyflow's graph layer.

`DynamicPrompt` is looked up on first use so that packs importing only `ExecutionBlocker` never pull in the
graph layer (and this module imports even where that layer is absent).
"""

from __future__ import annotations

import importlib
from typing import Any

from partyflow.nodes.values import ExecutionBlocker

__all__ = ["ExecutionBlocker"]  # DynamicPrompt: see __getattr__

_LAZY = {"DynamicPrompt": "partyflow.graph.dynamic"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'comfy_execution.graph' has no attribute {name!r}")
    try:
        module = importlib.import_module(_LAZY[name])
    except ModuleNotFoundError as exc:
        raise AttributeError(f"comfy_execution.graph.{name} is not available: {exc}") from exc
    return getattr(module, name)
