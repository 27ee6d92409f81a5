"""Lists in ComfyUI's sense: an output marked OUTPUT_IS_LIST sends its items downstream one by one (the
next node runs once per item), and an INPUT_IS_LIST node receives them gathered back into one list.
"""

from __future__ import annotations

from typing import Any

from .convert import as_text
from .sockets import ANY, JSON
from .text import split_text

CATEGORY = "partyflow/lists"

MAX_RANGE = 100_000


def _first(values: list[Any], name: str) -> Any:
    """An INPUT_IS_LIST node gets its widgets as lists too; they hold one value."""
    if not values:
        raise ValueError(f"'{name}' received no value")
    return values[0]


class ListFromText:
    DESCRIPTION = "Split text into items that flow downstream one by one (each next node runs per item)."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("items",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": ("STRING", {"default": "", "multiline": True, "tooltip": "The text to split."}),
            "separator": ("STRING", {"default": "\\n", "tooltip": "Where to cut; \\n splits into lines."}),
            "strip": ("BOOLEAN", {"default": True, "tooltip": "Remove spaces around each item."}),
            "skip_empty": ("BOOLEAN", {"default": True, "tooltip": "Leave out empty items."}),
        }}

    def run(self, text, separator, strip, skip_empty):
        return (split_text(text, separator, strip, skip_empty),)


class ListFromJSON:
    DESCRIPTION = "Send the items of a JSON list downstream one by one."
    CATEGORY = CATEGORY
    RETURN_TYPES = (ANY,)
    RETURN_NAMES = ("items",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"data": (JSON, {"tooltip": "A JSON list."})}}

    def run(self, data):
        if not isinstance(data, list):
            raise ValueError(f"'data' must be a JSON list, got {type(data).__name__}")
        return (list(data),)


class ListToJSON:
    DESCRIPTION = "Gather items that flow one by one back into a single JSON list."
    CATEGORY = CATEGORY
    RETURN_TYPES = (JSON,)
    RETURN_NAMES = ("list",)
    INPUT_IS_LIST = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"items": (ANY, {"forceInput": True, "tooltip": "The items to gather."})}}

    def run(self, items):
        return (list(items),)


class ListLength:
    DESCRIPTION = "How many items flow into this node."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("length",)
    INPUT_IS_LIST = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"items": (ANY, {"forceInput": True, "tooltip": "The items to count."})}}

    def run(self, items):
        return (len(items),)


class ListGetItem:
    DESCRIPTION = "Pick one item by position; negative positions count from the end."
    CATEGORY = CATEGORY
    RETURN_TYPES = (ANY,)
    RETURN_NAMES = ("item",)
    INPUT_IS_LIST = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "items": (ANY, {"forceInput": True, "tooltip": "The items to pick from."}),
            "index": ("INT", {"default": 0, "min": -MAX_RANGE, "max": MAX_RANGE,
                              "tooltip": "0 is the first item, -1 the last."}),
        }}

    def run(self, items, index):
        position = _first(index, "index")
        if not -len(items) <= position < len(items):
            raise IndexError(f"index {position} is out of range for {len(items)} item(s)")
        return (items[position],)


class ListJoin:
    DESCRIPTION = "Join items that flow one by one into a single text."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    INPUT_IS_LIST = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "items": (ANY, {"forceInput": True, "tooltip": "The items; non-text items are written as JSON."}),
            "separator": ("STRING", {"default": "\\n", "tooltip": "Put between items; \\n for lines."}),
        }}

    def run(self, items, separator):
        glue = _first(separator, "separator").replace("\\n", "\n").replace("\\t", "\t")
        return (glue.join(as_text(item) for item in items),)


class IntRange:
    DESCRIPTION = f"The integers from start up to (not including) stop, one by one; at most {MAX_RANGE:,}."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("numbers",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "start": ("INT", {"default": 0, "min": -(2**63), "max": 2**63 - 1, "tooltip": "The first number."}),
            "stop": ("INT", {"default": 10, "min": -(2**63), "max": 2**63 - 1,
                             "tooltip": "Where to stop; not included."}),
            "step": ("INT", {"default": 1, "min": -(2**63), "max": 2**63 - 1,
                             "tooltip": "The distance between numbers; negative counts down."}),
        }}

    def run(self, start, stop, step):
        if step == 0:
            raise ValueError("step is 0; the range would never end")
        numbers = range(start, stop, step)
        if len(numbers) > MAX_RANGE:
            raise ValueError(f"the range has {len(numbers):,} numbers; the limit is {MAX_RANGE:,}")
        return (list(numbers),)


NODE_CLASS_MAPPINGS = {
    "ListFromText": ListFromText,
    "ListFromJSON": ListFromJSON,
    "ListToJSON": ListToJSON,
    "ListLength": ListLength,
    "ListGetItem": ListGetItem,
    "ListJoin": ListJoin,
    "IntRange": IntRange,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "ListFromText": "List from Text",
    "ListFromJSON": "List from JSON",
    "ListToJSON": "List to JSON",
    "ListLength": "List Length",
    "ListGetItem": "Get List Item",
    "ListJoin": "Join List",
    "IntRange": "Range of Integers",
}
