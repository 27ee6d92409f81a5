"""Running workflows for workflow tools: on the engine this pack runs in, or else on a new engine over the home.

Under a partyflow engine the host offers the engine's own `run_async` (`HostContext.run_workflow`): a workflow
tool then runs with exactly the packs, settings, local models and cache of the workflow that called it, and pays
no engine start per call (pack loading, worker processes of isolated packs, reloading local weights). The nested
run is a prompt of that engine like any other; with the `classic` cache (keep what the last prompt used) it can
evict the calling prompt's cached results, which then run again on that prompt's next run. Elsewhere (a ComfyUI
install, an isolated worker) there is no such engine, so a fresh one over the home runs each call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from partyflow.nodes.host import current_host_or_none
from partyflow.tools import ToolError, WorkflowRunner


def workflow_runner(home: Path) -> WorkflowRunner:
    """The runner for workflow tools made now: the host engine's when there is one, else `HomeWorkflowRunner`."""
    host = current_host_or_none()
    run = getattr(host, "run_workflow", None) if host is not None else None
    return HostWorkflowRunner(run) if run is not None else HomeWorkflowRunner(home)


class HostWorkflowRunner:
    """`run_async` of the engine the node runs in; a refused prompt becomes a `ToolError` the model can read."""

    def __init__(self, run: Callable[..., Awaitable[Any]]) -> None:
        self.run = run

    async def run_async(self, workflow: Mapping[str, Any], *, outputs: list[str] | None = None) -> Any:
        from partyflow import PromptValidationError  # the engine is only needed when a tool runs

        try:
            return await self.run(dict(workflow), outputs=outputs)
        except PromptValidationError as exc:
            raise ToolError(f"the workflow is not valid: {exc}") from None


class HomeWorkflowRunner:
    """`run_async` like `partyflow.Engine`'s, on a new engine over `home` each time (no host engine to use)."""

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
