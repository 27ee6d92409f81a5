"""Running workflows for workflow tools: a partyflow engine over the home this pack runs in.

A fresh engine per run keeps the tool independent of the engine running the agent (which the ComfyUI node
interface does not expose) and gives each run its own cache and events; the cost is loading the packs again,
tens of milliseconds with the built-in packs, small next to the model calls around a tool call.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from partyflow.tools import ToolError


class HomeWorkflowRunner:
    """`run_async` like `partyflow.Engine`'s, on a new engine over `home` each time."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    async def run_async(self, workflow: Mapping[str, Any], *, outputs: list[str] | None = None) -> Any:
        from partyflow import Engine, PromptValidationError  # the engine is only needed when a tool runs

        engine = Engine(home=self.home)
        try:
            return await engine.run_async(dict(workflow), outputs=outputs)
        except PromptValidationError as exc:
            raise ToolError(f"the workflow is not valid: {exc}") from None
        finally:
            engine.close()
