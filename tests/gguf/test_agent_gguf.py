"""The agent loop (issue 7) on the llama.cpp provider: with `tool_choice` the provider's grammar makes the tiny
random-weight model call the tool, the agent runs it, and the next request renders the result in the template."""

from __future__ import annotations

import asyncio

import pytest
from tests.gguf.test_llamacpp import make
from tests.support.tiny_gguf import TinyGGUF

from partyflow.agents import Agent, AgentLimits
from partyflow.config import Home
from partyflow.llm.models import ModelManager
from partyflow.tools import function_tool


@pytest.fixture(scope="module")
def shared(tiny_gguf: TinyGGUF) -> ModelManager:
    return ModelManager(budget_bytes=1 << 30)


def test_an_agent_runs_the_tool_a_gguf_model_calls(gguf_home: Home, tiny_gguf: TinyGGUF,
                                                   shared: ModelManager) -> None:
    ticks: list[int] = []

    def tick() -> str:
        """Count one tick."""
        ticks.append(1)
        return f"tick {len(ticks)}"

    agent = Agent(make(gguf_home, manager=shared), tools=[function_tool(tick)],
                  limits=AgentLimits(max_steps=2, max_repeats=5),
                  request_options={"tool_choice": "tick", "max_tokens": 64, "seed": 1})
    result = asyncio.run(agent.run("Tick twice."))
    assert result.stop_reason == "max_steps" and len(ticks) == 2  # the second step saw the first tool's result
    assert [run.output for step in result.steps for run in step.tool_runs] == ["tick 1", "tick 2"]
    assert [m.role for m in result.new_messages] == ["user", "assistant", "tool", "assistant", "tool"]
