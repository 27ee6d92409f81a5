"""Output nodes that show values in the editor (and in history) as text."""

from __future__ import annotations

import json

from .convert import as_text
from .sockets import ANY

CATEGORY = "partyflow/display"


def preview(value: object) -> str:
    """Text for a value: strings unchanged, JSON-compatible containers as indented JSON, others via str."""
    if isinstance(value, (dict, list)):
        try:
            return json.dumps(value, indent=2, ensure_ascii=False)
        except (TypeError, ValueError):
            return repr(value)
    return as_text(value)


class DisplayText:
    DESCRIPTION = "Show text in the editor and in the run's outputs, and pass it on."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    OUTPUT_NODE = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"forceInput": True, "tooltip": "The text to show."})}}

    def run(self, text):
        return {"ui": {"text": [text]}, "result": (text,)}


class DisplayValue:
    DESCRIPTION = "Show any value as text (objects and lists as indented JSON) and pass that text on."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    OUTPUT_NODE = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY, {"forceInput": True, "tooltip": "Any value to show."})}}

    def run(self, value):
        text = preview(value)
        return {"ui": {"text": [text]}, "result": (text,)}


NODE_CLASS_MAPPINGS = {
    "DisplayText": DisplayText,
    "DisplayValue": DisplayValue,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "DisplayText": "Show Text",
    "DisplayValue": "Preview Any as Text",
}
