"""What can go wrong inside one prompt's execution, as values the engine reports and users can act on."""

from __future__ import annotations

from dataclasses import dataclass


class NodeExecutionError(Exception):
    """A node that failed: raised, returned the wrong shape, or was fed a blocked input with a message."""

    def __init__(self, message: str, *, exception_type: str = "NodeExecutionError") -> None:
        super().__init__(message)
        self.exception_type = exception_type


class NodeInterrupted(Exception):
    """Raised inside node code by comfy.model_management's interrupt checks; caught as an interrupt."""


@dataclass(frozen=True)
class ExecutionFailure:
    """Why a prompt failed: the node, its class, the message for users and the traceback for logs."""

    node_id: str
    class_type: str
    message: str
    exception_type: str
    traceback: str = ""

    def describe(self) -> str:
        """`node 3 (JSONParse): ValueError: ...` — the exception's class without its module path, which says
        nothing to a user (the full name stays in `exception_type` for ComfyUI clients and logs)."""
        kind = self.exception_type.rpartition(".")[2]
        return f"node {self.node_id} ({self.class_type}): {kind + ': ' if kind else ''}{self.message}"


def is_interrupt(exc: BaseException) -> bool:
    return isinstance(exc, NodeInterrupted) or type(exc).__name__ == "InterruptProcessingException"
