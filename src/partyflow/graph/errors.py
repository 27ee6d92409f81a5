"""Errors of the workflow-data layer: what is wrong with a file or a prompt, in words a user can act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class WorkflowFormatError(ValueError):
    """A workflow file or document that cannot be read as either ComfyUI format.

    `where` names the place (a node id, a link id, a JSON path) so the message can point at it.
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.where = where
        self.hint = hint
        text = message if where is None else f"{where}: {message}"
        if hint:
            text = f"{text} ({hint})"
        super().__init__(text)


@dataclass(frozen=True)
class NodeIssue:
    """One problem with one node input, shaped like an entry of ComfyUI's `node_errors[id].errors`."""

    type: str
    message: str
    details: str = ""
    extra_info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "details": self.details, "extra_info": self.extra_info}
