"""The agent loop (issue 7) on the local transformers provider: a parsed tool call runs and its result goes back
through the model's chat template. The tiny model's weights are random, so its reply is forced (see `forcing`)."""

from __future__ import annotations

import asyncio

import pytest
from tests.local.test_transformers_local import forcing

from partyflow.agents import Agent
from partyflow.config import Home
from partyflow.llm.models import ModelManager
from partyflow.tools import function_tool


@pytest.fixture(scope="module")
def shared(tiny_home: Home) -> ModelManager:
    return ModelManager(budget_bytes=1 << 30)


def test_an_agent_runs_the_tool_a_local_model_calls(tiny_home: Home, shared: ModelManager) -> None:
    asked: list[str] = []

    def get_weather(city: str) -> str:
        """Current weather in a city."""
        asked.append(city)
        return f"sunny in {city}"

    # The forced text is written once; the next generation ends at once (an empty final answer).
    provider = forcing(tiny_home, shared, '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}'
                                          "</tool_call>")
    agent = Agent(provider, tools=[function_tool(get_weather)])
    result = asyncio.run(agent.run("Weather in Paris?"))
    assert result.ok and asked == ["Paris"] and len(result.steps) == 2
    assert result.steps[0].tool_runs[0].output == "sunny in Paris" and result.steps[0].tool_runs[0].error is None
    assert [m.role for m in result.new_messages] == ["user", "assistant", "tool", "assistant"]
    assert result.usage.prompt_tokens > 0
