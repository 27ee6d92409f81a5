"""`AgentSpec`: everything needed to build an agent except an open connection, so it can travel along links.

Specs hold a model handle (a provider name), never a provider or key: the provider is opened when the agent runs
and closed after, so a spec can be cached, shown and reused across runs like any node output.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from partyflow.agents import Agent, AgentLimits, Step
from partyflow.tools import Tool

from .common import STEP_EVENT, model_name, open_model, send_event


@dataclass(frozen=True)
class AgentSpec:
    model: Any
    name: str = "agent"
    system_prompt: str = ""
    tools: tuple[Tool, ...] = ()
    limits: AgentLimits = field(default_factory=AgentLimits)
    temperature: float | None = None
    output_schema: dict[str, Any] | None = None

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Agent]:
        async with open_model(self.model) as provider:
            yield Agent(provider, tools=self.tools, system_prompt=self.system_prompt, name=self.name,
                        model_name=model_name(self.model), limits=self.limits, temperature=self.temperature,
                        output_schema=self.output_schema)


def limits_from(max_steps: int, max_tokens: int, max_cost: float, timeout: float, tool_timeout: float,
                ) -> AgentLimits:
    """Node widgets to limits: 0 means no limit, as the tooltips say."""
    return AgentLimits(max_steps=max_steps, max_tokens=max_tokens or None, max_cost=max_cost or None,
                       timeout=timeout or None, tool_timeout=tool_timeout or 60.0)


def step_reporter(node_id: str | None, agent: str) -> Any:
    """An `on_step` callback sending each step to the UI as a `partyflow.agent.step` message."""
    def report(step: Step) -> None:
        send_event(STEP_EVENT, {"node": node_id, "agent": agent, "step": step.to_json()})
    return report
