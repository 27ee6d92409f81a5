"""ComfyUI's `execution` module: `ExecutionBlocker` and the names packs check; the executor itself is partyflow's.

Packs import `ExecutionBlocker` from here (older ComfyUI kept it here) and a few read `ExecutionResult`;
ComfyUI's own executor classes are not offered as such: reading one gives a placeholder that raises when used,
because partyflow's engine runs the prompts.
"""

from __future__ import annotations

import enum
from typing import Any

from partyflow.nodes.comfy_compat._located import located_file
from partyflow.nodes.comfy_compat._runtime import placeholder, placeholder_function
from partyflow.nodes.values import ExecutionBlocker

__all__ = ["DuplicateNodeError", "ExecutionBlocker", "ExecutionResult"]


class ExecutionResult(enum.Enum):
    SUCCESS = 0
    FAILURE = 1
    PENDING = 2


class DuplicateNodeError(Exception):
    pass


def __getattr__(name: str) -> Any:
    if name == "__file__":
        return located_file(_REAL_FILE, "execution.py")
    if name.startswith("__"):
        raise AttributeError(name)
    value = placeholder_function(f"execution.{name}") if name[:1].islower() else placeholder(f"execution.{name}")
    globals()[name] = value
    return value


_REAL_FILE = __file__
del __file__  # answered by __getattr__: a path in the engine's home (see _located)
