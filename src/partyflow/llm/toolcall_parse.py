"""Finding tool calls in the raw text of a local model, which has no API to return them separately.

Chat templates teach models a few conventions: Hermes/Qwen wrap each call in `<tool_call>...</tool_call>`, Llama 3
and Mistral write bare JSON objects (sometimes in a list, a code fence, or after `[TOOL_CALLS]`). We accept any
of them, and only objects that name a known tool, so ordinary JSON in a reply is not mistaken for a call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from partyflow.llm.types import ToolCall

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL)


def parse_tool_calls(text: str, tool_names: Iterable[str]) -> tuple[str, tuple[ToolCall, ...]]:
    """Split a reply into its prose and the calls it makes to the tools named in `tool_names`."""
    known = frozenset(tool_names)
    if not known:
        return text, ()
    tagged = _TAGGED.findall(text)
    if tagged and (calls := _calls([_loads(chunk) for chunk in tagged], known)):
        return _TAGGED.sub("", text).strip(), calls
    for candidate, remainder in _candidates(text):
        calls = _calls(_as_list(_loads(candidate)), known)
        if calls:
            return remainder.strip(), calls
    return text, ()


def _candidates(text: str) -> Iterable[tuple[str, str]]:
    """Pieces of `text` that may hold calls, each with the text that is left without it."""
    for match in _FENCE.finditer(text):
        yield match.group(1), text[:match.start()] + text[match.end():]
    stripped = text.strip().removeprefix("[TOOL_CALLS]").strip()
    yield stripped, ""
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start > 0:
        yield text[start:], text[:start]


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _calls(values: list[Any], known: frozenset[str]) -> tuple[ToolCall, ...]:
    calls = []
    for value in values:
        if not isinstance(value, dict):
            continue
        function = value.get("function") if isinstance(value.get("function"), dict) else value
        name = function.get("name")
        arguments = function.get("arguments", function.get("parameters", {}))
        if name not in known:
            continue
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        calls.append(ToolCall(id=f"call_{len(calls)}", name=name, arguments=arguments))
    return tuple(calls)
