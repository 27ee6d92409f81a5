"""What an agent run leaves behind: each step (the model's reply, the tools it ran, timings, usage) and the result.

Everything converts to plain JSON (`to_json`), because steps travel as progress events, land in workflow history
and are returned by the Agent node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from partyflow.llm import Message, ToolCall, Usage, dump_messages

StopReason = Literal["final", "max_steps", "budget", "timeout", "repeated_calls", "invalid_output", "error"]


@dataclass(frozen=True)
class ToolRun:
    """One tool call as it ran: `output` is the text sent back to the model (the error text when it failed)."""

    call_id: str
    name: str
    arguments: str
    output: str
    error: str | None
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.call_id, "name": self.name, "arguments": self.arguments, "output": self.output,
                "error": self.error, "seconds": round(self.seconds, 6)}


@dataclass(frozen=True)
class Step:
    """One model call and the tool calls it asked for; `note` says why a step ended differently (errors)."""

    index: int
    text: str
    tool_calls: tuple[ToolCall, ...]
    tool_runs: tuple[ToolRun, ...]
    usage: Usage | None
    model_seconds: float
    tools_seconds: float
    finish_reason: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        usage = self.usage or Usage()
        return {
            "index": self.index, "text": self.text, "finish_reason": self.finish_reason, "note": self.note,
            "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls],
            "tool_runs": [run.to_json() for run in self.tool_runs],
            "usage": usage_json(usage), "model_seconds": round(self.model_seconds, 6),
            "tools_seconds": round(self.tools_seconds, 6),
        }


def usage_json(usage: Usage) -> dict[str, Any]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens, "cost": usage.cost}


@dataclass
class AgentResult:
    """The outcome: `answer` is the final text (the last text seen when the run stopped early), `output` the
    parsed JSON when a schema was asked for. `messages` is the whole conversation; `new_messages` is what this
    run added after the history it was given (what a memory session appends)."""

    answer: str
    stop_reason: StopReason
    steps: list[Step]
    messages: tuple[Message, ...]
    usage: Usage
    seconds: float
    history_length: int = 0
    output: Any = None
    error: str | None = None
    agent: str = "agent"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.stop_reason == "final"

    @property
    def new_messages(self) -> tuple[Message, ...]:
        return self.messages[self.history_length:]

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent, "answer": self.answer, "output": self.output, "stop_reason": self.stop_reason,
            "error": self.error, "seconds": round(self.seconds, 6), "usage": usage_json(self.usage),
            "steps": [step.to_json() for step in self.steps],
        }

    def messages_json(self) -> list[dict[str, Any]]:
        return dump_messages(self.messages)
