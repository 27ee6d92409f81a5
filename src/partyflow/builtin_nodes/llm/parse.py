"""Parse JSON From Reply: models wrap JSON in prose and code fences; this finds the JSON itself."""

from __future__ import annotations

import json
import re
from typing import Any

from .sockets import JSON

CATEGORY = "partyflow/llm"

_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_-]*[ \t]*\r?\n(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


def extract_json(reply: str) -> Any:
    """The first JSON object or array in `reply`: fenced blocks first, then anywhere in the text.

    Raises ValueError naming what was found instead, so the user can tighten the prompt.
    """
    for block in _FENCE.findall(reply):
        found = _first_json(block)
        if found is not _MISSING:
            return found
    found = _first_json(reply)
    if found is _MISSING:
        start = " ".join(reply.split())[:80]
        raise ValueError(f"no JSON object or array found in the reply (it starts {start!r}); ask the model for "
                         "JSON only, or turn on the Chat node's json_mode")
    return found


_MISSING = object()


def _first_json(text: str) -> Any:
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = _DECODER.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        return value
    return _MISSING


class ParseJSONFromReply:
    DESCRIPTION = ("Extract the first JSON object or array from a model's reply, also from inside ``` code fences, "
                   "and fail with a clear message when there is none.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (JSON,)
    RETURN_NAMES = ("json",)
    FUNCTION = "parse"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"reply": ("STRING", {"forceInput": True, "tooltip": "A Chat node's text."})}}

    def parse(self, reply):
        return (extract_json(reply),)


NODE_CLASS_MAPPINGS = {"ParseJSONFromReply": ParseJSONFromReply}
NODE_DISPLAY_NAME_MAPPINGS = {"ParseJSONFromReply": "Parse JSON From Reply"}
