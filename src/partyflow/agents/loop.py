"""The tool-calling loop: ask the model, run the tools it asks for, feed the results back, until it answers.

The loop is deliberately thin (one request object, one `achat`, one gather of tool calls per step) because it
runs once per step of every agent: its own cost must stay small next to a model call. Everything that can go
wrong with a tool becomes text for the model (see `execute`); what ends a run is a final answer or a limit, and
a model error ends it with `stop_reason="error"` and the steps so far, so callers can show what happened.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from partyflow.agents.execute import ToolRunner
from partyflow.agents.limits import AgentLimits
from partyflow.agents.record import AgentResult, Step, StopReason
from partyflow.llm import (
    BadResponseError,
    ChatModel,
    ChatRequest,
    ChatResponse,
    LLMError,
    Message,
    ResponseFormat,
    SystemMessage,
    ToolMessage,
    Usage,
    UserMessage,
)
from partyflow.llm.redact import redact
from partyflow.telemetry.tracing import active as active_tracing
from partyflow.telemetry.tracing import mark_error
from partyflow.tools import ArgumentError, Tool, check_json

log = logging.getLogger(__name__)

StepCallback = Callable[[Step], None]


class Agent:
    """A model with a system prompt, tools and limits. `run` may be called many times, also concurrently.

    `output_schema` asks for a structured final answer: the model is sent the schema as its response format, the
    final reply must parse as JSON matching it, and a reply that does not is returned to the model with the reason
    (one more step) rather than accepted.
    """

    def __init__(self, model: ChatModel, *, tools: Sequence[Tool] = (), system_prompt: str = "",
                 model_name: str | None = None, limits: AgentLimits | None = None,
                 output_schema: Mapping[str, Any] | None = None, temperature: float | None = None,
                 name: str = "agent", request_options: Mapping[str, Any] | None = None) -> None:
        self.model = model
        self.name = name
        self.system_prompt = system_prompt
        self.model_name = model_name
        self.limits = limits or AgentLimits()
        self.output_schema = dict(output_schema) if output_schema is not None else None
        self.temperature = temperature
        self.tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self.tools:
                raise ValueError(f"agent {name!r} has two tools named {tool.name!r}; tool names must be unique")
            self.tools[tool.name] = tool
        self._definitions = tuple(tool.definition for tool in tools)
        self._format = (ResponseFormat.from_schema(self.output_schema, name="final_answer", strict=False)
                        if self.output_schema is not None else None)
        self._options = dict(request_options or {})
        self._needs_threads = any(not tool.is_async for tool in tools)

    def initial_messages(self, task: str | Sequence[Message], history: Sequence[Message] = (),
                         ) -> tuple[list[Message], int]:
        """The messages of the first request, and how many of them came before this run (system + history)."""
        past = list(history)
        if self.system_prompt.strip():
            # The history's own system messages (an older prompt, a memory summary) join ours in one message.
            others = [m.content for m in past if isinstance(m, SystemMessage) and m.content != self.system_prompt]
            system = "\n\n".join([self.system_prompt, *others])
            past = [SystemMessage(content=system), *(m for m in past if not isinstance(m, SystemMessage))]
        turn = [UserMessage(content=task)] if isinstance(task, str) else list(task)
        if not past and not turn:
            raise ValueError(f"agent {self.name!r} was given no task and no history")
        return [*past, *turn], len(past)

    async def run(self, task: str | Sequence[Message], *, history: Sequence[Message] = (),
                  on_step: StepCallback | None = None) -> AgentResult:
        """Run to a final answer or a limit; `on_step` is called after every step (progress reporting)."""
        messages, before = self.initial_messages(task, history)
        executor = (ThreadPoolExecutor(max_workers=self.limits.max_parallel_tools,
                                       thread_name_prefix=f"agent-{self.name}") if self._needs_threads else None)
        try:
            run = _Run(self, messages, before, on_step, executor)
            tracing = active_tracing()
            if tracing is None:
                return await run.execute()
            # issue 18: an `invoke_agent` span around the run; its model calls and tools are its children (tokens
            # stay on the model calls' spans, so a backend adding up the trace counts them once)
            with tracing.span(f"invoke_agent {self.name}", {"gen_ai.operation.name": "invoke_agent",
                                                            "gen_ai.agent.name": self.name}) as span:
                result = await run.execute()
                span.set_attributes({"partyflow.agent.steps": len(result.steps),
                                     "partyflow.agent.stop_reason": result.stop_reason})
                if result.error:
                    mark_error(span, redact(result.error), "AgentError")
                return result
        finally:
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)


class _Run:
    """The state of one run; a separate object so that one `Agent` can serve concurrent runs."""

    def __init__(self, agent: Agent, messages: list[Message], before: int, on_step: StepCallback | None,
                 executor: ThreadPoolExecutor | None) -> None:
        self.agent = agent
        self.limits = agent.limits
        self.messages = messages
        self.before = before
        self.on_step = on_step
        self.steps: list[Step] = []
        self.usage = Usage()
        self.answer = ""
        self.output: Any = None
        self.started = time.perf_counter()
        self.deadline = self.started + self.limits.timeout if self.limits.timeout is not None else None
        self.tools = ToolRunner(agent.tools, self.limits, executor)
        self.refused_streak = 0

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.perf_counter()

    async def execute(self) -> AgentResult:
        while True:
            if len(self.steps) >= self.limits.max_steps:
                return self.finish("max_steps", f"stopped after {self.limits.max_steps} steps without a final "
                                                "answer; raise max_steps or simplify the task")
            left = self.time_left()
            if left is not None and left <= 0:
                return self.finish("timeout", f"the run took longer than {self.limits.timeout:g} s")
            outcome = await self.step(left)
            if outcome is not None:
                return outcome

    async def step(self, left: float | None) -> AgentResult | None:
        agent = self.agent
        request = ChatRequest(messages=tuple(self.messages), model=agent.model_name, tools=agent._definitions,
                              response_format=agent._format, temperature=agent.temperature, **agent._options)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(None if left is None else max(left, 0.0)):
                response = await agent.model.achat(request)
        except TimeoutError:
            return self.finish("timeout", f"the model did not answer within the run's {self.limits.timeout:g} s")
        except BadResponseError as exc:
            if agent._format is None:
                return self.finish("error", str(exc))
            self.record(None, time.perf_counter() - started, note=f"reply was not JSON: {exc}")
            if len(self.steps) >= self.limits.max_steps:
                return self.finish("invalid_output", f"the final answer is not JSON: {exc}")
            self.messages.append(UserMessage(content=self.schema_reminder("your reply was not valid JSON")))
            return None
        except LLMError as exc:
            return self.finish("error", str(exc))
        model_seconds = time.perf_counter() - started
        self.usage += response.usage or Usage()
        self.messages.append(response.message)
        if response.text:
            self.answer = response.text
        if not response.tool_calls:
            return self.final(response, model_seconds)
        tools_started = time.perf_counter()
        runs, all_refused = await self.tools.run_all(response.tool_calls, self.time_left())
        self.messages.extend(ToolMessage(tool_call_id=run.call_id, content=run.output) for run in runs)
        self.record(response, model_seconds, runs, time.perf_counter() - tools_started)
        self.refused_streak = self.refused_streak + 1 if all_refused else 0
        if self.refused_streak >= 2:
            return self.finish("repeated_calls", "the model kept repeating the same tool calls")
        return self.over_budget()

    def final(self, response: ChatResponse, model_seconds: float) -> AgentResult | None:
        schema = self.agent.output_schema
        if schema is None:
            self.record(response, model_seconds)
            return self.finish("final")
        problem = None
        try:
            value = json.loads(response.text)
            check_json(schema, value, "the answer")
        except json.JSONDecodeError as exc:
            problem = f"your answer is not valid JSON ({exc})"
        except ArgumentError as exc:
            problem = str(exc)
        if problem is None:
            self.output = value
            self.record(response, model_seconds)
            return self.finish("final")
        self.record(response, model_seconds, note=f"invalid final output: {problem}")
        if len(self.steps) >= self.limits.max_steps:
            return self.finish("invalid_output", f"the final answer does not match the output schema: {problem}")
        self.messages.append(UserMessage(content=self.schema_reminder(problem)))
        return None

    def schema_reminder(self, problem: str) -> str:
        schema = json.dumps(self.agent.output_schema, separators=(",", ":"))
        return f"{problem}. Reply with only a JSON value matching this JSON schema: {schema}"

    def over_budget(self) -> AgentResult | None:
        limits = self.limits
        if limits.max_tokens is not None and self.usage.total_tokens >= limits.max_tokens:
            return self.finish("budget", f"used {self.usage.total_tokens} tokens; the budget is {limits.max_tokens}")
        if limits.max_cost is not None and self.usage.cost is not None and self.usage.cost >= limits.max_cost:
            return self.finish("budget", f"spent {self.usage.cost:g}; the budget is {limits.max_cost:g}")
        return None

    def record(self, response: ChatResponse | None, model_seconds: float, runs: Sequence[Any] = (),
               tools_seconds: float = 0.0, note: str | None = None) -> None:
        step = Step(
            index=len(self.steps), text=response.text if response else "",
            tool_calls=response.tool_calls if response else (), tool_runs=tuple(runs),
            usage=response.usage if response else None, model_seconds=model_seconds, tools_seconds=tools_seconds,
            finish_reason=response.finish_reason.value if response and response.finish_reason else None, note=note)
        self.steps.append(step)
        if self.on_step is not None:
            try:
                self.on_step(step)
            except Exception:  # a broken progress sink must not end the run
                log.exception("agent %s: the step callback failed", self.agent.name)

    def finish(self, reason: StopReason, error: str | None = None) -> AgentResult:
        return AgentResult(answer=self.answer, stop_reason=reason, steps=self.steps, messages=tuple(self.messages),
                           usage=self.usage, seconds=time.perf_counter() - self.started, history_length=self.before,
                           output=self.output, error=error, agent=self.agent.name)
