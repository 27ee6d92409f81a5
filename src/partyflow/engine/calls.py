"""How node functions are called: list mapping, constant unwrapping, and the machinery that keeps calls cheap.

Kept apart from the executor's scheduling so each piece can be read (and tested) on its own.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from partyflow.nodes.protocol import NodeDefinition
from partyflow.nodes.values import ExecutionBlocker

logger = logging.getLogger("partyflow.executor")


class CallSpeeds:
    """Learns which sync node classes are so fast that a worker thread would cost more than the call.

    A class runs inline after `streak` consecutive calls under `fast_s`; one inline call over `slow_s`
    sends it back to the threads. Blocking nodes (I/O, sleeps, models) never qualify, so they keep running
    concurrently; trivial nodes (string ops, math) stop paying the ~60 us hop.
    """

    def __init__(self, fast_s: float = 0.0002, slow_s: float = 0.002, streak: int = 5) -> None:
        self.fast_s, self.slow_s, self.streak = fast_s, slow_s, streak
        self._fast_runs: dict[type, int] = {}

    def inline(self, cls: type) -> bool:
        return self._fast_runs.get(cls, 0) >= self.streak

    def record(self, cls: type, seconds: float) -> None:
        """Lock-free on purpose: a lost update between threads only delays or repeats learning by one call."""
        if seconds < self.fast_s:
            self._fast_runs[cls] = self._fast_runs.get(cls, 0) + 1
        elif seconds > self.slow_s or self._fast_runs.get(cls, 0) < self.streak:
            self._fast_runs[cls] = 0


def accepted(method: Any, values: dict[str, Any], definition: NodeDefinition) -> dict[str, Any]:
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return values
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return values
    return {k: v for k, v in values.items() if k in params}


def map_calls(definition: NodeDefinition, inputs: dict[str, list[Any]], hidden: dict[str, Any]) -> list[dict[str, Any]]:
    """ComfyUI's list mapping: one call per item of the longest input, shorter inputs repeating their last."""
    if definition.input_is_list:
        call: dict[str, Any] = dict(inputs)
        call.update({k: [v] for k, v in hidden.items()})
        return [call]
    if not inputs:
        return [dict(hidden)]
    lengths = [len(v) for v in inputs.values()]
    count = 0 if min(lengths) == 0 else max(lengths)
    if count == 1:
        return [{**{k: v[0] for k, v in inputs.items()}, **hidden}]
    return [{**{k: v[min(i, len(v) - 1)] for k, v in inputs.items()}, **hidden} for i in range(count)]


def unwrap(value: Any) -> Any:
    """A list constant travels as `{"__value__": [...]}` (the frontend's way to tell it from a link)."""
    if isinstance(value, dict) and len(value) == 1 and "__value__" in value:
        return value["__value__"]
    return value


def find_blocker(inputs: dict[str, list[Any]]) -> ExecutionBlocker | None:
    for values in inputs.values():
        for value in values:
            if isinstance(value, ExecutionBlocker):
                return value
    return None
