"""The tool model: a definition the model sees (name, description, JSON schema) joined to the code that runs it.

`partyflow.llm.Tool` is only the definition sent to a provider; a `Tool` here also carries the callable, so an
agent can run what the model asked for. Callables may be sync or async: the agent decides where sync ones run
(its own thread pool, so several sync tools overlap), which is why `invoke` takes an executor rather than the
tool owning threads.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from partyflow.llm import Tool as ToolDefinition
from partyflow.tools.validate import ArgumentError, check_arguments

ToolFunction = Callable[..., Any] | Callable[..., Awaitable[Any]]
ArgumentParser = Callable[[dict[str, Any]], dict[str, Any]]


class ToolError(Exception):
    """A tool failed in a way the model should hear about; the message is what the model is told."""


@dataclass(frozen=True)
class Tool:
    """A callable tool: `fn(**arguments)` runs it, `parameters` (a JSON object schema) describes the arguments.

    `parse` replaces the default argument check (a structural JSON-schema check) when the tool has a better one,
    such as the pydantic model of a Python function tool. `timeout` (seconds) overrides the agent's default.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: ToolFunction
    parse: ArgumentParser | None = None
    timeout: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_definition", ToolDefinition(
            name=self.name, description=self.description, parameters=self.parameters))

    @property
    def definition(self) -> ToolDefinition:
        """What the model is shown; the LLM pack's Chat node also accepts a `Tool` through this attribute."""
        return self._definition  # type: ignore[attr-defined,no-any-return]

    @property
    def is_async(self) -> bool:
        call = type(self.fn).__call__ if not inspect.isroutine(self.fn) else None
        return inspect.iscoroutinefunction(self.fn) or inspect.iscoroutinefunction(call)

    def check(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments to call `fn` with; raises `ArgumentError` naming what the model got wrong."""
        if self.parse is not None:
            return self.parse(dict(arguments))
        check_arguments(self.parameters, arguments)
        return dict(arguments)

    async def invoke(self, arguments: Mapping[str, Any], *, executor: Executor | None = None) -> Any:
        """Check the arguments and run the tool; sync functions run on `executor` (the loop's default if None)."""
        checked = self.check(arguments)
        if self.is_async:
            return await self.fn(**checked)
        loop = asyncio.get_running_loop()
        # in the caller's context, as asyncio.to_thread does: the current span (a tool's model calls are traced
        # under it) and the host's context variables reach the worker thread
        context = contextvars.copy_context()
        result = await loop.run_in_executor(executor, functools.partial(context.run, self.fn, **checked))
        if inspect.isawaitable(result):  # a sync wrapper that returned a coroutine
            return await result
        return result


def result_text(value: Any) -> str:
    """A tool's return value as the text sent to the model: strings as they are, anything else as JSON.

    A value that is not JSON (an object, bytes, NaN) raises `ToolError`, so the model is told instead of being sent
    a repr it cannot use.
    """
    if isinstance(value, str):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump(mode="json")
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ToolError(f"the tool returned a value that is not JSON ({type(value).__name__}: {exc})") from None


__all__ = ["ArgumentError", "Tool", "ToolError", "ToolFunction", "result_text"]
