"""Assembling a streamed reply: text pieces and tool-call fragments in, one `ChatResponse` out.

Every provider streams the same way (OpenAI's delta format is the common denominator), so they share this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from partyflow.llm.types import AssistantMessage, ChatResponse, FinishReason, ToolCall, ToolCallDelta, Usage


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamAssembler:
    """Collects the pieces of one streamed reply; `response()` builds the final message."""

    model: str
    provider: str
    id: str | None = None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    _text: list[str] = field(default_factory=list)
    _calls: dict[int, _PartialCall] = field(default_factory=dict)

    def add_text(self, text: str) -> None:
        self._text.append(text)

    def add_tool_call(self, delta: ToolCallDelta) -> None:
        call = self._calls.setdefault(delta.index, _PartialCall())
        call.id = call.id or (delta.id or "")
        call.name = call.name or (delta.name or "")
        call.arguments.append(delta.arguments)

    @property
    def text(self) -> str:
        return "".join(self._text)

    def response(self) -> ChatResponse:
        calls = tuple(
            ToolCall(id=call.id or f"call_{index}", name=call.name, arguments="".join(call.arguments) or "{}")
            for index, call in sorted(self._calls.items())
        )
        message = AssistantMessage(content=self.text if self._text or not calls else None, tool_calls=calls)
        return ChatResponse(message=message, model=self.model, provider=self.provider,
                            finish_reason=self.finish_reason, usage=self.usage, id=self.id)
