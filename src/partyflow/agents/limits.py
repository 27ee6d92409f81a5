"""How far an agent may go: steps, tokens, cost, time, and how it treats tools that misbehave."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgentLimits:
    """Limits of one agent run. None means unlimited.

    `max_steps` counts model calls. `max_tokens` and `max_cost` are checked after each model call against the
    run's total (cost needs prices in the provider's config; without them `max_cost` cannot trigger).
    `timeout` bounds the whole run in seconds; each tool call gets `tool_timeout` (or its own `Tool.timeout`),
    never more than the time left. An identical call (same tool, same arguments) is run at most `max_repeats`
    times; further ones are refused with an error, and a step made only of refused calls twice in a row stops the
    run, since the model is looping.
    """

    max_steps: int = 10
    max_tokens: int | None = None
    max_cost: float | None = None
    timeout: float | None = None
    tool_timeout: float = 60.0
    max_parallel_tools: int = 8
    max_repeats: int = 2
    max_tool_output_chars: int = 20_000

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        if self.max_parallel_tools < 1:
            raise ValueError("max_parallel_tools must be at least 1")
        if self.max_repeats < 1:
            raise ValueError("max_repeats must be at least 1")
