"""Agent-loop overhead per step, partyflow vs LangGraph's prebuilt ReAct agent, and parallel tool calls.

Both agents talk to the same scripted OpenAI-compatible server on loopback (tests/support/openai_server.py): a
10-step task is nine replies asking for one tool call each, then a final answer. The bound is the same ten HTTP
calls made with the raw `openai.AsyncOpenAI` client (what both stacks use underneath); the overhead per step
is (agent run - raw calls) / 10: building requests, parsing replies, running the (instant) tool, bookkeeping.
The three are interleaved round by round, so drifts in machine load hit them alike; medians are reported.

Parallel tools: one reply asks for 8 tools that each take 200 ms (async `asyncio.sleep`, and sync `time.sleep`
run on the agent's thread pool); goal: the step's tool phase takes < 1.5 x 200 ms.

Needs `langchain-openai` in the venv (`.venv/bin/pip install langchain-openai`); only this benchmark uses it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _support import Goal, console, parse_args, ratio, report_goals, show_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai  # noqa: E402
from tests.support.openai_server import OpenAIServer, Reply, chat_completion  # noqa: E402

from partyflow.agents import Agent, AgentLimits  # noqa: E402
from partyflow.llm import (  # noqa: E402
    AssistantMessage,
    ChatRequest,
    ChatResponse,
    ProviderConfig,
    ToolCall,
    Usage,
)
from partyflow.llm.providers import create  # noqa: E402
from partyflow.tools import function_tool  # noqa: E402

STEPS = 10
TASK = "Count to nine with the tick tool, then say done."
WAIT = 0.2
PARALLEL = 8


def script(server: OpenAIServer) -> None:
    """Nine tool-call replies and a final answer: the 10-step task."""
    server.reset()
    replies = [Reply.json(chat_completion(None, tool_calls=[
        {"id": f"call_{i}", "name": "tick", "arguments": json.dumps({"n": i})}])) for i in range(STEPS - 1)]
    server.script(*replies, Reply.json(chat_completion("done")))


async def raw_calls(client: openai.AsyncOpenAI) -> None:
    """The ten model calls alone, with a conversation growing as an agent's does."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": TASK}]
    tools = [{"type": "function", "function": {"name": "tick", "description": "Tick.", "parameters": {
        "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}}]
    for _ in range(STEPS):
        reply = await client.chat.completions.create(model="tiny-chat", messages=messages, tools=tools)
        message = reply.choices[0].message
        if not message.tool_calls:
            return
        messages.append(message.model_dump(exclude_none=True))
        messages += [{"role": "tool", "tool_call_id": c.id, "content": str(json.loads(c.function.arguments)["n"])}
                     for c in message.tool_calls]


def make_partyflow(url: str) -> tuple[Callable[[], Awaitable[Any]], Callable[[], None]]:
    config = ProviderConfig.model_validate({"name": "bench", "type": "openai_compat", "base_url": url,
                                            "model": "tiny-chat", "max_retries": 0})
    provider = create("bench", config)

    async def tick(n: int) -> int:
        """Tick."""
        return n

    agent = Agent(provider, tools=[function_tool(tick)], limits=AgentLimits(max_steps=STEPS + 1, max_repeats=99))

    async def run() -> Any:
        result = await agent.run(TASK)
        assert result.ok and len(result.steps) == STEPS, result.error
        return result

    return run, provider.close


def make_langgraph(url: str) -> Callable[[], Awaitable[Any]]:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent

    @tool
    async def tick(n: int) -> int:
        """Tick."""
        return n

    model = ChatOpenAI(model="tiny-chat", base_url=url, api_key="no-key", max_retries=0)
    graph = create_react_agent(model, [tick])

    async def run() -> Any:
        state = await graph.ainvoke({"messages": [("user", TASK)]}, config={"recursion_limit": 4 * STEPS})
        assert len(state["messages"]) == 2 * STEPS, len(state["messages"])
        return state

    return run


class InProcessModel:
    """The same 10-step script without HTTP: isolates the loop's own cost from the provider's wire handling."""

    name = "in-process"
    default_model = "tiny-chat"

    def __init__(self) -> None:
        self.calls = 0

    async def achat(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        step = self.calls % STEPS
        message = (AssistantMessage(tool_calls=(ToolCall(id=f"call_{step}", name="tick", arguments=json.dumps(
            {"n": step})),)) if step else AssistantMessage(content="done"))
        return ChatResponse(message=message, model="tiny-chat", provider=self.name, usage=Usage(prompt_tokens=7))


async def loop_alone(runs: int) -> float:
    """Seconds per step of the partyflow loop with an in-process model (median over `runs` batches of 20 runs)."""
    async def tick(n: int) -> int:
        """Tick."""
        return n

    agent = Agent(InProcessModel(), tools=[function_tool(tick)],  # type: ignore[arg-type]
                  limits=AgentLimits(max_steps=STEPS + 1, max_repeats=99))
    samples = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        for _ in range(20):
            await agent.run(TASK)
        samples.append((time.perf_counter() - started) / (20 * STEPS))
    return statistics.median(samples[1:])


async def timed(server: OpenAIServer, action: Callable[[], Awaitable[Any]]) -> float:
    script(server)
    gc.collect()
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


async def overhead(server: OpenAIServer, runs: int) -> dict[str, float]:
    client = openai.AsyncOpenAI(base_url=server.url, api_key="no-key", max_retries=0)
    partyflow_run, close = make_partyflow(server.url)
    langgraph_run = make_langgraph(server.url)
    contenders = {"raw": lambda: raw_calls(client), "partyflow": partyflow_run, "langgraph": langgraph_run}
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    try:
        for _ in range(2):  # warm-up: connections, imports, caches
            for action in contenders.values():
                await timed(server, action)
        for _ in range(runs):
            for name, action in contenders.items():
                samples[name].append(await timed(server, action))
    finally:
        await client.close()
        close()
    return {name: statistics.median(values) for name, values in samples.items()}


async def parallel(server: OpenAIServer) -> dict[str, tuple[float, float]]:
    config = ProviderConfig.model_validate({"name": "bench", "type": "openai_compat", "base_url": server.url,
                                            "model": "tiny-chat", "max_retries": 0})
    provider = create("bench", config)

    async def wait_async(n: int) -> int:
        """Wait 200 ms."""
        await asyncio.sleep(WAIT)
        return n

    def wait_sync(n: int) -> int:
        """Wait 200 ms."""
        time.sleep(WAIT)
        return n

    results = {}
    try:
        for label, fn in (("async (asyncio.sleep)", wait_async), ("sync (time.sleep, thread pool)", wait_sync)):
            tool = function_tool(fn, name="wait")
            agent = Agent(provider, tools=[tool])
            server.reset()
            server.script(Reply.json(chat_completion(None, tool_calls=[
                {"id": f"c{i}", "name": "wait", "arguments": json.dumps({"n": i})} for i in range(PARALLEL)])),
                Reply.json(chat_completion("done")))
            result = await agent.run("wait eight times")
            assert result.ok and all(r.error is None for r in result.steps[0].tool_runs)
            results[label] = (result.steps[0].tools_seconds, result.seconds)
    finally:
        provider.close()
    return results


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], runs=15)
    with OpenAIServer() as server:
        medians = asyncio.run(overhead(server, args.runs))
        waits = asyncio.run(parallel(server))
    alone = asyncio.run(loop_alone(args.runs))
    raw = medians["raw"]
    per_step = {name: (medians[name] - raw) / STEPS for name in ("partyflow", "langgraph")}
    show_table(
        f"Agent loop, {STEPS}-step task on the scripted loopback server (median of {args.runs} interleaved runs)",
        ["stack", "run (ms)", "raw model calls (ms)", "overhead / step (ms)", "overhead vs partyflow"],
        [[name, f"{medians[name] * 1e3:.1f}", f"{raw * 1e3:.1f}", f"{per_step[name] * 1e3:.3f}",
          f"{ratio(per_step[name], per_step['partyflow']):.1f}x"] for name in ("partyflow", "langgraph")])
    console.print(f"partyflow loop alone (in-process model, no HTTP): {alone * 1e6:.0f} us/step; the rest of "
                  "partyflow's overhead is the provider's request/response conversion (partyflow.llm).")
    show_table(f"Parallel tool calls: {PARALLEL} tools x {WAIT * 1e3:.0f} ms in one step",
               ["tools", "tool phase (ms)", "/ one wait", "whole run incl. 2 model calls (ms)",
                "sequential bound (ms)"],
               [[label, f"{tools * 1e3:.0f}", f"{tools / WAIT:.2f}x", f"{total * 1e3:.0f}",
                 f"{PARALLEL * WAIT * 1e3:.0f}"] for label, (tools, total) in waits.items()])
    goals = [Goal("overhead per step below LangGraph's", per_step["partyflow"] < per_step["langgraph"],
                  f"partyflow {per_step['partyflow'] * 1e3:.3f} ms vs LangGraph {per_step['langgraph'] * 1e3:.3f} ms "
                  f"({ratio(per_step['langgraph'], per_step['partyflow']):.1f}x)")]
    goals += [Goal(f"{PARALLEL} parallel tools < 1.5x one wait, {label}", tools < 1.5 * WAIT,
                   f"{tools * 1e3:.0f} ms") for label, (tools, _) in waits.items()]
    return report_goals(goals, check=not args.no_check)


if __name__ == "__main__":
    sys.exit(main())
