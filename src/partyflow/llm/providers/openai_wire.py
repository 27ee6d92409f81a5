"""Translation between our types and the OpenAI chat-completions wire format (request bodies, replies, chunks).

Pure functions over plain data and the `openai` client's reply objects; the provider does the I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from partyflow.llm.types import (
    AssistantMessage,
    ChatRequest,
    ChatResponse,
    ContentPart,
    FinishReason,
    ImagePart,
    Message,
    ResponseFormat,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolMessage,
    Usage,
    UserMessage,
)

CostFn = Callable[[int, int], float | None]
_TOOL_CHOICE_NAMES = ("auto", "none", "required")


def request_body(request: ChatRequest, model: str) -> dict[str, Any]:
    """Keyword arguments for `client.chat.completions.create`; unset options are left out, not sent as null."""
    body: dict[str, Any] = {"model": model, "messages": [message_dict(m) for m in request.messages]}
    if request.tools:
        body["tools"] = [{"type": "function", "function": _function(tool.name, tool.description,
                                                                    tool.parameters, tool.strict)}
                         for tool in request.tools]
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.tool_choice is not None:
        body["tool_choice"] = (request.tool_choice if request.tool_choice in _TOOL_CHOICE_NAMES
                               else {"type": "function", "function": {"name": request.tool_choice}})
    if request.response_format is not None:
        body["response_format"] = _response_format(request.response_format)
    options = {"temperature": request.temperature, "top_p": request.top_p, "max_tokens": request.max_tokens,
               "seed": request.seed, "stop": list(request.stop) or None}
    body.update({key: value for key, value in options.items() if value is not None})
    if request.extra:
        body["extra_body"] = dict(request.extra)
    return body


def message_dict(message: Message) -> dict[str, Any]:
    match message:
        case SystemMessage():
            return {"role": "system", "content": message.content}
        case UserMessage():
            out = {"role": "user", "content": _content(message.content)}
            return out | ({"name": message.name} if message.name else {})
        case AssistantMessage():
            out = {"role": "assistant", "content": message.content}
            if message.tool_calls:
                out["tool_calls"] = [{"id": call.id, "type": "function",
                                      "function": {"name": call.name, "arguments": call.arguments}}
                                     for call in message.tool_calls]
            return out
        case ToolMessage():
            return {"role": "tool", "tool_call_id": message.tool_call_id, "content": _content(message.content)}
    raise TypeError(f"not a chat message: {message!r}")


def _content(content: str | tuple[ContentPart, ...]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    return [_part(part) for part in content]


def _part(part: ContentPart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    assert isinstance(part, ImagePart)
    return {"type": "image_url", "image_url": {"url": part.url, "detail": part.detail}}


def _function(name: str, description: str, parameters: dict[str, Any], strict: bool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "parameters": parameters}
    if description:
        function["description"] = description
    if strict:
        function["strict"] = True
    return function


def _response_format(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type != "json_schema":
        return {"type": fmt.type}
    return {"type": "json_schema", "json_schema": {"name": fmt.name, "schema": fmt.json_schema, "strict": fmt.strict}}


# --- replies ---------------------------------------------------------------------------------------------------

def response_from(completion: Any, *, provider: str, model: str, cost: CostFn) -> ChatResponse:
    """Our response from a `ChatCompletion`; `ValueError` when its shape is unusable (no choices)."""
    if isinstance(completion, str):  # the client hands back non-JSON bodies as text
        raise ValueError(f"expected a JSON chat completion, got text starting {completion[:60]!r}")
    if not getattr(completion, "choices", None):
        raise ValueError("the reply has no choices")
    choice = completion.choices[0]
    wire = choice.message
    calls = tuple(ToolCall(id=call.id or f"call_{index}", name=call.function.name,
                           arguments=call.function.arguments or "{}")
                  for index, call in enumerate(wire.tool_calls or ()))
    return ChatResponse(
        message=AssistantMessage(content=wire.content, tool_calls=calls),
        model=completion.model or model,
        provider=provider,
        finish_reason=FinishReason.parse(choice.finish_reason),
        usage=usage_from(completion.usage, cost),
        id=completion.id,
    )


def usage_from(usage: Any, cost: CostFn) -> Usage | None:
    if usage is None:
        return None
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    return Usage(prompt_tokens=prompt, completion_tokens=completion, cost=cost(prompt, completion))


def chunk_parts(chunk: Any) -> tuple[str, tuple[ToolCallDelta, ...], str | None]:
    """The text, tool-call fragments and finish reason carried by one `ChatCompletionChunk`."""
    if not chunk.choices:  # the usage-only chunk that `include_usage` adds at the end
        return "", (), None
    choice = chunk.choices[0]
    delta = choice.delta
    if delta is None:
        return "", (), choice.finish_reason
    calls = tuple(
        ToolCallDelta(index=call.index if call.index is not None else position, id=call.id,
                      name=call.function.name if call.function else None,
                      arguments=(call.function.arguments or "") if call.function else "")
        for position, call in enumerate(delta.tool_calls or ())
    )
    return delta.content or "", calls, choice.finish_reason
