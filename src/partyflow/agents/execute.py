"""Running the tool calls of one model reply: all at once, each bounded in time, every failure turned into text.

The model must always get an answer for every call id (providers reject a conversation with an unanswered call),
so nothing here raises for a tool's sake: unknown tools, garbled arguments, exceptions, timeouts, non-JSON results
and loops all become a `ToolRun` whose output tells the model what went wrong and what to do instead.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from partyflow.agents.limits import AgentLimits
from partyflow.agents.record import ToolRun
from partyflow.llm import ToolCall
from partyflow.llm.redact import redact
from partyflow.telemetry.tracing import active as active_tracing
from partyflow.telemetry.tracing import mark_error
from partyflow.tools import ArgumentError, Tool, ToolError, result_text


class ToolRunner:
    """Runs calls against a fixed set of tools; remembers calls across steps to spot a model repeating itself."""

    def __init__(self, tools: Mapping[str, Tool], limits: AgentLimits, executor: Executor | None) -> None:
        self.tools = tools
        self.limits = limits
        self.executor = executor
        self._seen: Counter[str] = Counter()
        self._semaphore = asyncio.Semaphore(limits.max_parallel_tools)

    async def run_all(self, calls: Sequence[ToolCall], time_left: float | None) -> tuple[list[ToolRun], bool]:
        """Every call's `ToolRun`, in call order, and whether every call was refused as a repeat."""
        refused = [self._repeat_error(call) for call in calls]
        runs = await asyncio.gather(*(
            self._refuse(call, error) if error else self._run(call, time_left)
            for call, error in zip(calls, refused, strict=True)))
        return list(runs), bool(calls) and all(refused)

    def _repeat_error(self, call: ToolCall) -> str | None:
        key = f"{call.name}\0{_canonical(call.arguments)}"
        self._seen[key] += 1
        count = self._seen[key]
        if count <= self.limits.max_repeats:
            return None
        return (f"refused: {call.name} was already called {count - 1} times with exactly these arguments; "
                "repeating it will not give a different result. Use the earlier result, change the arguments, "
                "or give your final answer.")

    async def _refuse(self, call: ToolCall, error: str) -> ToolRun:
        return ToolRun(call.id, call.name, call.arguments, _error_text(error), error, 0.0)

    async def _run(self, call: ToolCall, time_left: float | None) -> ToolRun:
        started = time.perf_counter()
        async with self._semaphore:
            tracing = active_tracing()
            if tracing is None:
                error, output = await self._attempt(call, time_left)
            else:
                error, output = await self._traced_attempt(tracing, call, time_left)
        seconds = time.perf_counter() - started
        if error is not None:
            return ToolRun(call.id, call.name, call.arguments, _error_text(error), error, seconds)
        return ToolRun(call.id, call.name, call.arguments, self._cut(output), None, seconds)

    async def _traced_attempt(self, tracing: Any, call: ToolCall, time_left: float | None) -> tuple[str | None, str]:
        """The attempt as an `execute_tool` span (issue 18); arguments and result only with capture_content."""
        tool = self.tools.get(call.name)
        with tracing.span(f"execute_tool {call.name}", {
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.name,
                "gen_ai.tool.call.id": call.id, "gen_ai.tool.description": tool.description if tool else None,
                "gen_ai.tool.type": "function"}) as span:
            error, output = await self._attempt(call, time_left)
            if tracing.capture_content:
                span.set_attribute("gen_ai.tool.call.arguments", redact(call.arguments))
                span.set_attribute("gen_ai.tool.call.result", redact(error or output)[:16_000])
            if error is not None:
                mark_error(span, redact(error), "ToolError")
            return error, output

    async def _attempt(self, call: ToolCall, time_left: float | None) -> tuple[str | None, str]:
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return f"unknown tool {call.name!r}; the available tools are: {known}", ""
        try:
            arguments = call.parsed_arguments()
        except ValueError as exc:
            return f"{exc}; send the arguments as one JSON object matching the tool's schema", ""
        timeout = tool.timeout if tool.timeout is not None else self.limits.tool_timeout
        if time_left is not None:
            timeout = max(0.0, min(timeout, time_left))
        try:
            async with asyncio.timeout(timeout):
                value = await tool.invoke(arguments, executor=self.executor)
            return None, result_text(value)
        except TimeoutError:
            return f"tool {call.name!r} did not finish within {timeout:g} s and was stopped", ""
        except ArgumentError as exc:
            schema = json.dumps(tool.parameters, separators=(",", ":"))
            return f"invalid arguments for {call.name!r}: {exc}. The schema is {schema}", ""
        except ToolError as exc:
            return f"tool {call.name!r} failed: {exc}", ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a tool's bug is the model's information, not the agent's crash
            return f"tool {call.name!r} raised {type(exc).__name__}: {exc}", ""

    def _cut(self, text: str) -> str:
        limit = self.limits.max_tool_output_chars
        if len(text) <= limit:
            return text
        return text[:limit] + f"\n[... {len(text) - limit} more characters cut]"


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments or "{}"), sort_keys=True, separators=(",", ":"))
    except (json.JSONDecodeError, TypeError):
        return arguments


def _error_text(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)
