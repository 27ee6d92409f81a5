"""JSON values: parse and dump text, read and write inside them by path, build objects and lists."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from .sockets import ANY, JSON

CATEGORY = "partyflow/json"

PAIRS = 4
LIST_ITEMS = 6


def parse_json(text: str, source: str = "text") -> Any:
    """Parse JSON, naming the line and column of the first mistake so the user can find it."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        line = exc.doc.splitlines()[exc.lineno - 1] if exc.doc.splitlines() else ""
        shown = line if len(line) <= 80 else line[max(0, exc.colno - 40):exc.colno + 40]
        raise ValueError(f"invalid JSON in {source} at line {exc.lineno}, column {exc.colno}: {exc.msg}"
                         + (f"\n  {shown.strip()}" if shown.strip() else "")) from None


def dump_json(value: Any, indent: int = 0, sort_keys: bool = False) -> str:
    """JSON text for `value`; 0 indent means one compact line."""
    try:
        return json.dumps(value, indent=indent or None, sort_keys=sort_keys, ensure_ascii=False,
                          allow_nan=False, separators=None if indent else (",", ":"))
    except ValueError as exc:
        raise ValueError(f"cannot write JSON: {exc} (NaN and infinity have no JSON form)") from None
    except TypeError as exc:
        raise ValueError(f"cannot write JSON: {exc}") from None


# --- paths like a.b[0].c ----------------------------------------------------------------------------------

_TOKEN = re.compile(r"""(?P<dot>\.)?(?P<key>[^.\[\]]+)"""
                    r"""|\[\s*(?:(?P<index>-?\d+)|(?P<quoted>"(?:[^"\\]|\\.)*"|'[^']*'))\s*\]""")

Segment = str | int


def parse_path(path: str) -> list[Segment]:
    """Split `a.b[0]["odd.key"]` into keys and indexes; an empty path means the whole value."""
    segments: list[Segment] = []
    position = 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        if match is None or (match["key"] is not None and (match["dot"] is None) != (position == 0)):
            raise ValueError(f"bad path {path!r} at position {position}: write keys as a.b, "
                             "indexes as [0] and odd keys as [\"some.key\"]")
        segments.append(_segment(match))
        position = match.end()
    return segments


def _segment(match: re.Match[str]) -> Segment:
    if match["key"] is not None:
        return match["key"]
    if match["index"] is not None:
        return int(match["index"])
    quoted = match["quoted"]
    return json.loads(quoted) if quoted.startswith('"') else quoted[1:-1]


def format_path(segments: list[Segment]) -> str:
    text = ""
    for segment in segments:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif re.fullmatch(r"[^.\[\]\"']+", segment):
            text += f".{segment}" if text else segment
        else:
            text += f"[{json.dumps(segment)}]"
    return text or "(root)"


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return f"a {type(value).__name__}"


def _list_index(container: list[Any], segment: Segment) -> int | None:
    """The position `segment` names in a list (negative counts from the end), or None when there is none."""
    if isinstance(segment, str):
        if not re.fullmatch(r"-?\d+", segment):
            return None
        segment = int(segment)
    index = segment + len(container) if segment < 0 else segment
    return index if 0 <= index < len(container) else None


def get_path(data: Any, segments: list[Segment]) -> Any:
    """The value at `segments`, or a KeyError naming where the path stopped matching."""
    current = data
    for depth, segment in enumerate(segments):
        here = format_path(segments[:depth])
        if isinstance(current, dict) and isinstance(segment, str) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and (index := _list_index(current, segment)) is not None:
            current = current[index]
        else:
            shown = f"[{segment}]" if isinstance(segment, int) else repr(segment)
            raise KeyError(f"no {shown} in {_describe(current)} at {here}")
    return current


def set_path(data: Any, segments: list[Segment], value: Any, create_missing: bool) -> Any:
    """A copy of `data` with `value` at `segments`; the input is never changed (cached outputs are shared)."""
    if not segments:
        return copy.deepcopy(value)
    root = copy.deepcopy(data)
    parent = root
    for depth, segment in enumerate(segments[:-1]):
        parent = _child_for_write(parent, segment, segments[depth + 1], segments[:depth], create_missing)
    _assign(parent, segments[-1], value, segments[:-1])
    return root


def _child_for_write(parent: Any, segment: Segment, following: Segment, here: list[Segment],
                     create_missing: bool) -> Any:
    if isinstance(parent, dict) and isinstance(segment, str):
        if segment not in parent:
            if not create_missing:
                raise KeyError(f"no {segment!r} in an object at {format_path(here)}")
            parent[segment] = [] if isinstance(following, int) else {}
        return parent[segment]
    if isinstance(parent, list) and (index := _list_index(parent, segment)) is not None:
        return parent[index]
    if isinstance(parent, list) and segment == len(parent) and create_missing:
        parent.append([] if isinstance(following, int) else {})
        return parent[-1]
    raise KeyError(f"cannot go into {_describe(parent)} with {segment!r} at {format_path(here)}")


def _assign(parent: Any, segment: Segment, value: Any, here: list[Segment]) -> None:
    if isinstance(parent, dict) and isinstance(segment, str):
        parent[segment] = value
    elif isinstance(parent, list) and isinstance(segment, int) and segment == len(parent):
        parent.append(value)
    elif isinstance(parent, list) and (index := _list_index(parent, segment)) is not None:
        parent[index] = value
    else:
        raise KeyError(f"cannot set {segment!r} in {_describe(parent)} at {format_path(here)}")


# --- nodes ----------------------------------------------------------------------------------------------------


class JSONParse:
    DESCRIPTION = "Parse JSON text into a value; a mistake is reported with its line and column."
    CATEGORY = CATEGORY
    RETURN_TYPES = (JSON,)
    RETURN_NAMES = ("data",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "{}", "multiline": True,
                                                 "tooltip": "JSON text, e.g. {\"a\": [1, 2]}."})}}

    def run(self, text):
        return (parse_json(text),)


class JSONGet:
    DESCRIPTION = "Read the value at a path such as a.b[0].c (negative indexes count from the end)."
    CATEGORY = CATEGORY
    RETURN_TYPES = (ANY, "STRING", "BOOLEAN")
    RETURN_NAMES = ("value", "text", "found")
    OUTPUT_TOOLTIPS = ("The value found (null when missing and not required).",
                       "The value as text: strings as they are, anything else as JSON.",
                       "Whether the path exists.")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "data": (JSON, {"tooltip": "The JSON value to read from."}),
            "path": ("STRING", {"default": "", "tooltip": "e.g. user.emails[0]; empty means the whole value."}),
            "required": ("BOOLEAN", {"default": True,
                                     "tooltip": "Fail when the path is missing; otherwise output null."}),
        }}

    def run(self, data, path, required):
        segments = parse_path(path)
        try:
            value = get_path(data, segments)
        except KeyError as exc:
            if required:
                raise ValueError(f"path {path!r} not found: {exc.args[0]}") from None
            return (None, "", False)
        text = value if isinstance(value, str) else dump_json(value)
        return (value, text, True)


class JSONSet:
    DESCRIPTION = "Return a copy of the data with a value placed at a path; [n] one past the end appends."
    CATEGORY = CATEGORY
    RETURN_TYPES = (JSON,)
    RETURN_NAMES = ("data",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "data": (JSON, {"tooltip": "The JSON value to change (left unchanged; a copy is returned)."}),
            "path": ("STRING", {"default": "", "tooltip": "Where to put the value, e.g. a.b[0]."}),
            "value": (ANY, {"forceInput": True, "tooltip": "The value to put there."}),
            "create_missing": ("BOOLEAN", {"default": True,
                                           "tooltip": "Create missing objects/lists along the path."}),
        }}

    def run(self, data, path, value, create_missing):
        try:
            return (set_path(data, parse_path(path), value, create_missing),)
        except KeyError as exc:
            raise ValueError(f"cannot set path {path!r}: {exc.args[0]}") from None


class JSONBuildObject:
    DESCRIPTION = (f"Build a JSON object from up to {PAIRS} key/value pairs, optionally added to a base object "
                   "(chain several nodes for more keys).")
    CATEGORY = CATEGORY
    RETURN_TYPES = (JSON,)
    RETURN_NAMES = ("object",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        keys = {f"key_{n}": ("STRING", {"default": "", "tooltip": f"The name of value_{n}; empty skips the pair."})
                for n in range(1, PAIRS + 1)}
        values = {f"value_{n}": (ANY, {"forceInput": True, "tooltip": f"The value stored under key_{n}."})
                  for n in range(1, PAIRS + 1)}
        return {"required": keys,
                "optional": {"base": (JSON, {"tooltip": "An object to start from."}), **values}}

    def run(self, base=None, **pairs):
        if base is not None and not isinstance(base, dict):
            raise ValueError(f"'base' must be a JSON object, got {type(base).__name__}")
        result = dict(base or {})
        for n in range(1, PAIRS + 1):
            key, value = pairs.get(f"key_{n}", ""), pairs.get(f"value_{n}")
            if not key:
                if value is not None:
                    raise ValueError(f"value_{n} is connected but key_{n} is empty; name it")
                continue
            result[key] = value
        return (result,)


class JSONBuildList:
    DESCRIPTION = f"Build a JSON list from up to {LIST_ITEMS} connected values, optionally after a base list."
    CATEGORY = CATEGORY
    RETURN_TYPES = (JSON,)
    RETURN_NAMES = ("list",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        items = {f"item_{n}": (ANY, {"forceInput": True, "tooltip": f"Item {n}; unconnected items are left out."})
                 for n in range(1, LIST_ITEMS + 1)}
        return {"required": {}, "optional": {"base": (JSON, {"tooltip": "A list to extend."}), **items}}

    def run(self, base=None, **items):
        if base is not None and not isinstance(base, list):
            raise ValueError(f"'base' must be a JSON list, got {type(base).__name__}")
        added = [items[f"item_{n}"] for n in range(1, LIST_ITEMS + 1) if items.get(f"item_{n}") is not None]
        return ([*(base or []), *added],)


class JSONDump:
    DESCRIPTION = "Write a value as JSON text, compact or indented."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "data": (ANY, {"forceInput": True, "tooltip": "Any JSON-compatible value."}),
            "indent": ("INT", {"default": 2, "min": 0, "max": 8, "tooltip": "Spaces per level; 0 is one line."}),
            "sort_keys": ("BOOLEAN", {"default": False, "tooltip": "Write object keys in sorted order."}),
        }}

    def run(self, data, indent, sort_keys):
        return (dump_json(data, indent, sort_keys),)


NODE_CLASS_MAPPINGS = {
    "JSONParse": JSONParse,
    "JSONGet": JSONGet,
    "JSONSet": JSONSet,
    "JSONBuildObject": JSONBuildObject,
    "JSONBuildList": JSONBuildList,
    "JSONDump": JSONDump,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "JSONParse": "Parse JSON",
    "JSONGet": "Get JSON Value",
    "JSONSet": "Set JSON Value",
    "JSONBuildObject": "Build JSON Object",
    "JSONBuildList": "Build JSON List",
    "JSONDump": "JSON to Text",
}
