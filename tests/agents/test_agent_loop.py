"""The tool-calling loop against the scripted loopback server: answers, parallel tools, bad input and limits."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from tests.agents.scripted import calls, chat_requests, sent_messages, text
from tests.support.openai_server import OpenAIServer, Reply, chat_completion

from partyflow.agents import Agent, AgentLimits, Step
from partyflow.llm import ChatModel, ProviderConfig
from partyflow.llm.providers import create
from partyflow.tools import Tool, ToolError, function_tool


def run(agent: Agent, task: str = "do it", **options: Any) -> Any:
    return asyncio.run(agent.run(task, **options))


@function_tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_final_answer_after_tool_calls(server: OpenAIServer, model: ChatModel) -> None:
    server.script(calls(("add", {"a": 2, "b": 3})), text("5"))
    seen: list[Step] = []
    result = run(Agent(model, tools=[add], system_prompt="Be exact."), "2+3?", on_step=seen.append)
    assert result.ok and result.answer == "5" and result.stop_reason == "final"
    assert [s.index for s in seen] == [0, 1] and seen[0].tool_runs[0].output == "5"
    assert result.usage.total_tokens == 20
    first = chat_requests(server)[0].body
    assert first["tools"][0]["function"]["name"] == "add"
    messages = sent_messages(server)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[3] == {"role": "tool", "tool_call_id": "call_0", "content": "5"}
    assert [m.role for m in result.new_messages] == ["user", "assistant", "tool", "assistant"]
    json.dumps(result.to_json())


def test_async_tools_run_in_parallel(server: OpenAIServer, model: ChatModel) -> None:
    barrier = asyncio.Barrier(4)  # returns only when all four calls are running at the same time

    async def meet(n: int) -> int:
        """Wait for the others."""
        async with asyncio.timeout(10):
            await barrier.wait()
        return n

    tool = function_tool(meet)
    server.script(calls(*(("meet", {"n": i}) for i in range(4))), text("done"))
    result = run(Agent(model, tools=[tool]))
    assert result.ok and [r.output for r in result.steps[0].tool_runs] == ["0", "1", "2", "3"]


def test_sync_tools_run_in_parallel_threads(server: OpenAIServer, model: ChatModel) -> None:
    barrier = threading.Barrier(8, timeout=10)

    def meet(n: int) -> int:
        """Wait for the others."""
        barrier.wait()
        return n

    server.script(calls(*(("meet", {"n": i}) for i in range(8))), text("done"))
    result = run(Agent(model, tools=[function_tool(meet)]))
    assert result.ok and all(r.error is None for r in result.steps[0].tool_runs)


def test_tool_failures_become_errors_the_model_sees(server: OpenAIServer, model: ChatModel) -> None:
    async def boom() -> None:
        """Fails."""
        raise RuntimeError("disk on fire")

    async def hang() -> None:
        """Never returns."""
        await asyncio.Event().wait()

    def weird() -> object:
        """Returns an object."""
        return object()

    def refuses() -> None:
        """Refuses politely."""
        raise ToolError("the account is locked")

    tools = [add, function_tool(boom), function_tool(hang, timeout=0.2), function_tool(weird),
             function_tool(refuses)]
    server.script(calls(("boom", {}), ("hang", {}), ("weird", {}), ("nope", {}), ("add", "{not json"),
                        ("add", {"a": "x", "b": 1}), ("refuses", {})), text("sorry"))
    result = run(Agent(model, tools=tools))
    assert result.ok and result.answer == "sorry"
    errors = [r.error for r in result.steps[0].tool_runs]
    assert "RuntimeError: disk on fire" in errors[0]
    assert "did not finish within 0.2 s" in errors[1]
    assert "not JSON" in errors[2]
    assert "unknown tool 'nope'" in errors[3] and "add" in errors[3]
    assert "not valid JSON" in errors[4]
    assert "invalid arguments for 'add'" in errors[5] and '"required"' in errors[5]
    assert "the account is locked" in errors[6]
    tool_messages = [m for m in sent_messages(server) if m["role"] == "tool"]
    assert len(tool_messages) == 7 and all("error" in json.loads(m["content"]) for m in tool_messages)


def test_repeated_calls_are_refused_then_stop_the_run(server: OpenAIServer, model: ChatModel) -> None:
    same = calls(("add", {"a": 1, "b": 1}))
    server.script(same, same, same, same, same, text("never"))
    result = run(Agent(model, tools=[add], limits=AgentLimits(max_repeats=2)))
    assert result.stop_reason == "repeated_calls" and len(result.steps) == 4
    assert result.steps[1].tool_runs[0].error is None
    assert "already called 2 times" in (result.steps[2].tool_runs[0].error or "")


def test_step_limit(server: OpenAIServer, model: ChatModel) -> None:
    server.script(*(calls(("add", {"a": i, "b": 0})) for i in range(3)))
    result = run(Agent(model, tools=[add], limits=AgentLimits(max_steps=3)))
    assert result.stop_reason == "max_steps" and len(result.steps) == 3 and len(chat_requests(server)) == 3
    assert "max_steps" in (result.error or "")


def test_token_budget(server: OpenAIServer, model: ChatModel) -> None:
    server.script(*(Reply.json(chat_completion(None, prompt_tokens=60, completion_tokens=10, tool_calls=[
        {"id": f"c{i}", "name": "add", "arguments": json.dumps({"a": i, "b": 0})}])) for i in range(5)))
    result = run(Agent(model, tools=[add], limits=AgentLimits(max_tokens=100)))
    assert result.stop_reason == "budget" and len(result.steps) == 2 and result.usage.total_tokens == 140


def test_cost_budget(server: OpenAIServer) -> None:
    # Prices in the provider's config make each call cost (7 * 1 + 3 * 2) / 1000 = 0.013.
    config = ProviderConfig.model_validate({"name": "priced", "type": "openai_compat", "base_url": server.url,
                                            "model": "tiny-chat", "max_retries": 0, "price_input_per_1k": 1.0,
                                            "price_output_per_1k": 2.0})
    priced = create("priced", config)
    try:
        server.script(*(calls(("add", {"a": i, "b": 0})) for i in range(5)))
        result = run(Agent(priced, tools=[add], limits=AgentLimits(max_cost=0.03)))
    finally:
        priced.close()
    assert result.stop_reason == "budget" and len(result.steps) == 3 and len(chat_requests(server)) == 3
    assert result.usage.cost == pytest.approx(0.039) and "the budget is 0.03" in (result.error or "")


def test_run_timeout_while_the_model_thinks(server: OpenAIServer, model: ChatModel) -> None:
    server.script(Reply.slow(5))
    result = run(Agent(model, limits=AgentLimits(timeout=0.3)))
    assert result.stop_reason == "timeout" and result.seconds < 3


def test_model_errors_end_the_run_with_the_steps_so_far(server: OpenAIServer, model: ChatModel) -> None:
    server.script(calls(("add", {"a": 1, "b": 2})), Reply.error(400, "context too long for this model"))
    result = run(Agent(model, tools=[add]))
    assert result.stop_reason == "error" and len(result.steps) == 1 and "context too long" in (result.error or "")


def test_structured_output_is_checked_and_corrected(server: OpenAIServer, model: ChatModel) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
              "required": ["city", "days"]}
    server.script(text('{"city": "Rome"}'), text('{"city": "Rome", "days": 3}'))
    result = run(Agent(model, output_schema=schema))
    assert result.ok and result.output == {"city": "Rome", "days": 3} and len(result.steps) == 2
    assert "days" in (result.steps[0].note or "")
    first = chat_requests(server)[0].body
    assert first["response_format"]["type"] == "json_schema"
    assert "JSON schema" in sent_messages(server)[-1]["content"]


def test_structured_output_gives_up_at_the_step_limit(server: OpenAIServer, model: ChatModel) -> None:
    server.script(text('{"x": 1}'))
    result = run(Agent(model, output_schema={"type": "object", "required": ["y"]},
                       limits=AgentLimits(max_steps=1)))
    assert result.stop_reason == "invalid_output" and result.output is None


def test_history_and_system_prompts_merge(server: OpenAIServer, model: ChatModel) -> None:
    from partyflow.llm import AssistantMessage, SystemMessage, UserMessage

    history = [SystemMessage(content="Summary: the user is Ada."), UserMessage(content="hi"),
               AssistantMessage(content="hello")]
    server.script(text("ok"))
    result = run(Agent(model, system_prompt="Be kind."), "again", history=history)
    messages = sent_messages(server)
    assert messages[0] == {"role": "system", "content": "Be kind.\n\nSummary: the user is Ada."}
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert [m.role for m in result.new_messages] == ["user", "assistant"]


def test_duplicate_tool_names_are_refused(model: ChatModel) -> None:
    with pytest.raises(ValueError, match="two tools named 'add'"):
        Agent(model, tools=[add, add])


def test_tools_carry_the_definition_the_llm_pack_reads() -> None:
    # The LLM pack's `to_tools` accepts any object with a `definition` that is a `partyflow.llm.Tool`.
    from partyflow.llm import Tool as Definition

    assert isinstance(add, Tool) and isinstance(add.definition, Definition) and add.definition.name == "add"
