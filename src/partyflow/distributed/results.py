"""A `RunResult` as plain data for the trip from a worker back to the server (through Ray's object store).

Node outputs may hold objects that cannot be pickled (open clients, locks); those are dropped from
`node_outputs` and named in `meta`, since history and WebSocket clients only need the `ui` outputs.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict
from typing import Any

from partyflow.engine.engine import RunResult
from partyflow.engine.failures import ExecutionFailure


def to_wire(result: RunResult) -> dict[str, Any]:
    node_outputs: dict[str, Any] = {}
    dropped: list[str] = []
    for node_id, outputs in result.node_outputs.items():
        try:
            pickle.dumps(outputs)
        except Exception:  # any pickling failure: the value stays on the worker
            dropped.append(node_id)
        else:
            node_outputs[node_id] = outputs
    return {
        "prompt_id": result.prompt_id, "status": result.status, "outputs": result.outputs,
        "node_outputs": node_outputs, "dropped_outputs": dropped, "executed": result.executed,
        "cached": result.cached, "timings": result.timings,
        "error": asdict(result.error) if result.error is not None else None,
        "messages": result.messages, "meta": result.meta,
    }


def from_wire(data: dict[str, Any]) -> RunResult:
    error = ExecutionFailure(**data["error"]) if data.get("error") else None
    return RunResult(data["prompt_id"], data["status"], data["outputs"], data["node_outputs"], data["executed"],
                     data["cached"], data["timings"], error, data["messages"], data["meta"])


def failed(prompt_id: str, message: str, exception_type: str) -> RunResult:
    """A prompt the backend could not run to an end (worker lost too often, cluster gone for good)."""
    failure = ExecutionFailure("", "", message, exception_type)
    return RunResult(prompt_id, "error", {}, {}, [], [], {}, failure,
                     [["execution_error", {"prompt_id": prompt_id, "exception_message": message,
                                           "exception_type": exception_type}]])
