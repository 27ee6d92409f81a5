"""Values with a meaning to the executor that nodes may return or receive."""

from __future__ import annotations

from typing import Any


class ExecutionBlocker:
    """Returned as an output value: everything downstream of it does not run.

    With a message, a node that would have consumed it fails with that message; without one it is skipped
    silently (how ComfyUI packs build conditional branches).
    """

    __slots__ = ("message",)

    def __init__(self, message: str | None) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"ExecutionBlocker({self.message!r})"


def is_link(value: Any) -> bool:
    """A reference `[node_id, output_index]` to another node's output, as in API-format prompts."""
    kind = type(value)
    if kind is list or kind is tuple:  # the hot path: executors ask this for every input of every node
        return len(value) == 2 and type(value[0]) is str and type(value[1]) is int
    return (isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))
