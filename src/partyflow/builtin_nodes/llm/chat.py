"""The Chat node: one model call with a system prompt, a user prompt, images, history, tools and structured output.

It is `async` so that many chat nodes in one workflow wait on their servers together, and it streams, sending
each piece of text to the UI as a `partyflow.llm.stream` message while the reply is still being written.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from server import PromptServer

from partyflow.llm import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    ResponseFormat,
    SystemMessage,
    TextPart,
    ToolCall,
    UserMessage,
    dump_messages,
    load_messages,
)

from .access import open_provider
from .images import DETAILS, image_parts
from .sockets import JSON, LLM_HISTORY, LLM_MODEL, TOOL
from .tools import to_tools

CATEGORY = "partyflow/llm"
STREAM_EVENT = "partyflow.llm.stream"
MAX_SEED = 2**63 - 1


def load_history(history: Any) -> tuple[Message, ...]:
    """Messages from an `LLM_HISTORY` value (a list of message dicts, or that list as JSON text)."""
    if history is None or history == "":
        return ()
    try:
        return load_messages(history if isinstance(history, str) else list(history))
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"the history is not a list of chat messages ({where}: {first['msg']})") from None
    except TypeError:
        raise ValueError(f"the history must be a list of messages, got {type(history).__name__}") from None


def build_messages(system_prompt: str, user_prompt: str, history: Any,
                   images: tuple[ImagePart, ...] = ()) -> tuple[Message, ...]:
    """System prompt first (replacing the history's, when given), then the history, then the new user turn."""
    past = load_history(history)
    if system_prompt.strip():
        past = (SystemMessage(content=system_prompt), *(m for m in past if not isinstance(m, SystemMessage)))
    messages = (*past, *user_turn(user_prompt, images))
    if not messages:
        raise ValueError("nothing to send: the user prompt is empty and there is no history")
    return messages


def user_turn(user_prompt: str, images: tuple[ImagePart, ...]) -> tuple[UserMessage, ...]:
    """Plain text when there are no images (what every provider takes); else the text part, then the images."""
    if not images:
        return (UserMessage(content=user_prompt),) if user_prompt.strip() else ()
    text = (TextPart(text=user_prompt),) if user_prompt.strip() else ()
    return (UserMessage(content=(*text, *images)),)


def response_format(json_mode: bool, json_schema: str) -> ResponseFormat | None:
    """A schema wins over plain JSON mode; neither means free text."""
    if json_schema.strip():
        try:
            schema = json.loads(json_schema)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the JSON schema is not valid JSON ({exc})") from None
        try:
            return ResponseFormat.from_schema(schema)
        except ValidationError as exc:
            raise ValueError(exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")) from None
    return ResponseFormat.json_mode() if json_mode else None


def tool_calls_json(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    """Calls with parsed arguments; arguments the model garbled stay as text next to an `error` to act on."""
    out = []
    for call in calls:
        entry: dict[str, Any] = {"id": call.id, "name": call.name}
        try:
            entry["arguments"] = call.parsed_arguments()
        except ValueError as exc:
            entry |= {"arguments": call.arguments, "error": str(exc)}
        out.append(entry)
    return out


USAGE_EVENT = "partyflow.llm.usage"


def usage_json(response: ChatResponse) -> dict[str, Any]:
    usage = response.usage
    return {
        "provider": response.provider, "model": response.model,
        "finish_reason": response.finish_reason.value if response.finish_reason else None,
        "prompt_tokens": usage.prompt_tokens if usage else 0,
        "completion_tokens": usage.completion_tokens if usage else 0,
        "total_tokens": usage.total_tokens if usage else 0,
        "cost": usage.cost if usage else None,
    }


class Chat:
    DESCRIPTION = ("Send a system prompt, a user prompt and an optional conversation to a model; returns the reply, "
                   "the conversation with the reply appended, any tool calls and the token usage.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", LLM_HISTORY, JSON, JSON)
    RETURN_NAMES = ("text", "history", "tool_calls", "usage")
    OUTPUT_TOOLTIPS = (
        "The reply's text.",
        "The messages sent plus the reply: link it into the next Chat node to continue the conversation.",
        "Calls the model asked for: [{id, name, arguments}].",
        "Tokens used, cost (when prices are configured), model and finish reason.",
    )
    FUNCTION = "chat"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (LLM_MODEL, {"tooltip": "From a model loader node."}),
                "system_prompt": ("STRING", {"default": "", "multiline": True,
                                             "tooltip": "Instructions; when set, replaces the history's."}),
                "user_prompt": ("STRING", {"default": "", "multiline": True,
                                           "tooltip": "This turn's message; may be empty when history is linked."}),
            },
            "optional": {
                "history": (LLM_HISTORY, {"tooltip": "Earlier messages, from another Chat node's history."}),
                "tools": (TOOL, {"tooltip": "Functions the model may call; calls come out on tool_calls."}),
                "temperature": ("FLOAT", {"default": 0.7, "min": -1.0, "max": 2.0, "step": 0.05,
                                          "tooltip": "Sampling temperature; negative: the provider's default."}),
                "max_tokens": ("INT", {"default": 0, "min": 0, "max": 1_000_000,
                                       "tooltip": "Longest reply in tokens; 0: the provider's default."}),
                "seed": ("INT", {"default": -1, "min": -1, "max": MAX_SEED,
                                 "tooltip": "Fixed seed for repeatable replies; -1: none."}),
                "json_mode": ("BOOLEAN", {"default": False, "tooltip": "Ask for a JSON object as the reply."}),
                "json_schema": ("STRING", {"default": "", "multiline": True,
                                           "tooltip": "A JSON Schema the reply must match (implies JSON mode)."}),
                "stream": ("BOOLEAN", {"default": True, "tooltip": "Show the reply in the UI while it is written."}),
                "cache": ("BOOLEAN", {"default": False, "tooltip": (
                    "Reuse the stored reply when this exact request was answered before, in any run (only for "
                    "deterministic requests: temperature 0 or a fixed seed). Off: the provider's cache setting.")}),
                # new widgets go last: saved UI workflows list widget values by position
                "images": ("IMAGE", {"tooltip": "Images to show the model with this turn (a vision model)."}),
                "image_files": ("STRING", {"default": "", "multiline": True, "tooltip": (
                    "More images, one per line: a file name in the input directory, an http(s) URL or a "
                    "data: URL.")}),
                "image_detail": (DETAILS, {"default": "auto", "tooltip": (
                    "How closely the model looks: low is cheaper, high reads small print.")}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    async def chat(self, model, system_prompt, user_prompt, history=None, tools=None, temperature=0.7,
                   max_tokens=0, seed=-1, json_mode=False, json_schema="", stream=True, cache=False,
                   images=None, image_files="", image_detail="auto", unique_id=None):
        messages = build_messages(system_prompt, user_prompt, history,
                                  image_parts(images, image_files, image_detail))
        request = ChatRequest(
            messages=messages, model=model.model, tools=to_tools(tools),
            response_format=response_format(json_mode, json_schema),
            temperature=temperature if temperature >= 0 else None, max_tokens=max_tokens or None,
            seed=seed if seed >= 0 else None)
        async with open_provider(model, cache=cache) as provider:
            response = await (_streamed(provider, request, unique_id) if stream else provider.achat(request))
        usage = usage_json(response)
        server = PromptServer.instance  # a server counts tokens and cost by provider from this message
        server.send_sync(USAGE_EVENT, {"node": unique_id, **usage}, server.client_id)
        return (response.text, dump_messages([*messages, response.message]), tool_calls_json(response.tool_calls),
                usage)


async def _streamed(provider: Any, request: ChatRequest, node_id: str | None) -> ChatResponse:
    """Forward each text piece to the UI as it arrives; the last chunk carries the assembled reply."""
    server = PromptServer.instance
    async for chunk in provider.astream(request):
        if chunk.response is not None:
            return chunk.response
        if chunk.text:
            server.send_sync(STREAM_EVENT, {"node": node_id, "text": chunk.text}, server.client_id)
    raise RuntimeError(f"the stream of provider {provider.name!r} ended without a reply")


NODE_CLASS_MAPPINGS = {"LLMChat": Chat}
NODE_DISPLAY_NAME_MAPPINGS = {"LLMChat": "Chat"}
