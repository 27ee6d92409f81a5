"""Agent-as-tool: one agent offered to another as a tool taking a task and returning the sub-agent's answer.

The sub-agent runs its own loop with its own limits, so a delegating agent cannot make it run away; when it
stops without an answer the calling model is told why (a `ToolError`), not handed an empty string.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from partyflow.agents.loop import Agent
from partyflow.agents.record import AgentResult
from partyflow.tools import Tool, ToolError

_PARAMETERS = {"type": "object", "properties": {"task": {
    "type": "string", "description": "What to do, with all the context needed: the agent sees nothing else."}},
    "required": ["task"], "additionalProperties": False}


def delegation_tool(run: Callable[[str], Awaitable[AgentResult]], *, name: str, description: str = "",
                    timeout: float | None = None) -> Tool:
    """A tool `name(task)` whose result is the answer (or structured output) of `await run(task)`.

    `run` is any way to run an agent on a task, for example one that opens a provider first and closes it after.
    """
    async def delegate(task: str) -> Any:
        result = await run(task)
        if not result.ok:
            raise ToolError(f"agent {result.agent!r} stopped ({result.stop_reason}): {result.error or 'no answer'}"
                            + (f"; its last words: {result.answer[:500]!r}" if result.answer else ""))
        return result.output if result.output is not None else result.answer

    return Tool(name=name, description=description or f"Ask the {name} agent to do a task.",
                parameters=_PARAMETERS, fn=delegate, timeout=timeout, metadata={"kind": "agent"})


def agent_tool(agent: Agent, *, name: str | None = None, description: str = "",
               timeout: float | None = None) -> Tool:
    """`agent` as a tool; the tool's time limit defaults to the agent's own run timeout."""
    return delegation_tool(agent.run, name=name or agent.name, description=description,
                           timeout=timeout if timeout is not None else agent.limits.timeout)
