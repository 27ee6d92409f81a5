"""Text operations: concatenation, replacement, regular expressions, splitting, templates and conversions."""

from __future__ import annotations

import math
import re
from typing import Any

from .convert import as_text
from .sockets import ANY, JSON

CATEGORY = "partyflow/text"
REGEX_CATEGORY = "partyflow/text/regex"


def _text(tooltip: str, **options: Any) -> tuple[str, dict[str, Any]]:
    return ("STRING", {"default": "", "tooltip": tooltip, **options})


def compile_pattern(pattern: str, ignore_case: bool = False, multiline: bool = False) -> re.Pattern[str]:
    """Compile a user's pattern, turning Python's terse complaint into one that points at the mistake."""
    flags = (re.IGNORECASE if ignore_case else 0) | (re.MULTILINE if multiline else 0)
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise ValueError(f"invalid regular expression {pattern!r}: {exc.msg}{where}") from exc


REGEX_FLAGS = {
    "ignore_case": ("BOOLEAN", {"default": False, "tooltip": "Match letters regardless of case."}),
    "multiline": ("BOOLEAN", {"default": False, "tooltip": "Let ^ and $ match at every line, not only the ends."}),
}


class TextConcatenate:
    DESCRIPTION = "Join two texts into one, with an optional separator between them."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text_a": _text("The first text.", multiline=True),
            "text_b": _text("The text appended after the first.", multiline=True),
            "separator": _text("Put between the two texts, e.g. a space or \\n."),
        }}

    def run(self, text_a, text_b, separator):
        return (f"{text_a}{separator}{text_b}",)


class TextReplace:
    DESCRIPTION = "Replace every occurrence of a piece of text (plain text, not a pattern)."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": _text("The text to change.", multiline=True),
            "find": _text("The exact text to look for."),
            "replace": _text("What to put in its place."),
        }}

    def run(self, text, find, replace):
        if not find:
            raise ValueError("'find' is empty; give the text to look for")
        return (text.replace(find, replace),)


class TextRegexMatch:
    DESCRIPTION = "Whether a regular expression matches anywhere in the text."
    CATEGORY = REGEX_CATEGORY
    RETURN_TYPES = ("BOOLEAN",)
    RETURN_NAMES = ("matched",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": _text("The text to search.", multiline=True),
            "pattern": _text("A Python regular expression, e.g. ^\\d+$."),
            **REGEX_FLAGS,
        }}

    def run(self, text, pattern, ignore_case, multiline):
        return (compile_pattern(pattern, ignore_case, multiline).search(text) is not None,)


class TextRegexReplace:
    DESCRIPTION = "Replace what a regular expression matches; the replacement may use \\1 or \\g<name>."
    CATEGORY = REGEX_CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": _text("The text to change.", multiline=True),
            "pattern": _text("A Python regular expression."),
            "replacement": _text("The replacement; \\1 or \\g<name> insert a captured group."),
            "count": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1,
                              "tooltip": "At most this many replacements; 0 replaces all."}),
            **REGEX_FLAGS,
        }}

    def run(self, text, pattern, replacement, count, ignore_case, multiline):
        regex = compile_pattern(pattern, ignore_case, multiline)
        try:
            return (regex.sub(replacement, text, count=count),)
        except (re.error, IndexError) as exc:
            raise ValueError(f"invalid replacement {replacement!r} for pattern {pattern!r}: {exc}") from exc


class TextRegexExtract:
    DESCRIPTION = ("Pull text out with a regular expression: the first match and the list of all matches, "
                   "either the whole match (group 0) or one captured group.")
    CATEGORY = REGEX_CATEGORY
    RETURN_TYPES = ("STRING", JSON, "BOOLEAN")
    RETURN_NAMES = ("first", "all", "found")
    OUTPUT_TOOLTIPS = ("The first match, or empty text when nothing matched.",
                       "Every match as a JSON list of strings.",
                       "Whether anything matched.")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": _text("The text to search.", multiline=True),
            "pattern": _text("A Python regular expression, e.g. (\\w+)@example\\.com."),
            "group": ("INT", {"default": 0, "min": 0, "max": 99,
                              "tooltip": "Which captured group to return; 0 is the whole match."}),
            **REGEX_FLAGS,
        }}

    def run(self, text, pattern, group, ignore_case, multiline):
        regex = compile_pattern(pattern, ignore_case, multiline)
        if group > regex.groups:
            raise ValueError(f"pattern {pattern!r} has {regex.groups} group(s); group {group} does not exist")
        found = [match.group(group) or "" for match in regex.finditer(text)]
        return (found[0] if found else "", found, bool(found))


class TextSplit:
    DESCRIPTION = "Split text at a separator into a JSON list of strings."
    CATEGORY = CATEGORY
    RETURN_TYPES = (JSON,)
    RETURN_NAMES = ("items",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": _text("The text to split.", multiline=True),
            "separator": ("STRING", {"default": ",", "tooltip": "Where to cut; \\n splits into lines."}),
            "strip": ("BOOLEAN", {"default": True, "tooltip": "Remove spaces around each item."}),
            "skip_empty": ("BOOLEAN", {"default": True, "tooltip": "Leave out items that are empty."}),
        }}

    def run(self, text, separator, strip, skip_empty):
        return (split_text(text, separator, strip, skip_empty),)


def split_text(text: str, separator: str, strip: bool, skip_empty: bool) -> list[str]:
    """The splitting rule shared by TextSplit and the list nodes; `\\n` typed in a widget means a newline."""
    separator = separator.replace("\\n", "\n").replace("\\t", "\t")
    if not separator:
        raise ValueError("separator is empty; give the text to split at (\\n for lines)")
    items = text.split(separator)
    if strip:
        items = [item.strip() for item in items]
    return [item for item in items if item] if skip_empty else items


class TextJoin:
    DESCRIPTION = "Join a JSON list into one text, with a separator between items."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "items": (JSON, {"tooltip": "A JSON list; items that are not text are written as JSON."}),
            "separator": ("STRING", {"default": ", ", "tooltip": "Put between items; \\n for lines."}),
        }}

    def run(self, items, separator):
        if not isinstance(items, (list, tuple)):
            raise ValueError(f"'items' must be a list, got {type(items).__name__}")
        separator = separator.replace("\\n", "\n").replace("\\t", "\t")
        return (separator.join(as_text(item) for item in items),)


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill_template(template: str, values: dict[str, Any]) -> str:
    """Replace `{name}` placeholders; `{{` and `}}` are literal braces and other braces are left alone.

    Deliberately not `str.format`: that would let a template reach attributes of the values.
    """
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)[0]
        if name not in values:
            known = ", ".join(sorted(values)) or "none"
            raise KeyError(f"template placeholder {{{name}}} has no value (values given: {known})")
        return as_text(values[name])
    return _PLACEHOLDER.sub(substitute, template)


class TextTemplate:
    DESCRIPTION = ("Fill {name} placeholders in a template from a JSON object and from the inputs a, b, c, d. "
                   "Write {{ and }} for literal braces.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        named = {name: (ANY, {"forceInput": True, "tooltip": f"The value of {{{name}}} in the template."})
                 for name in ("a", "b", "c", "d")}
        return {
            "required": {"template": _text("Text with {name} placeholders, e.g. Hello {user}.", multiline=True)},
            "optional": {"values": (JSON, {"tooltip": "A JSON object whose keys name placeholders."}), **named},
        }

    def run(self, template, values=None, **named):
        if values is not None and not isinstance(values, dict):
            raise ValueError(f"'values' must be a JSON object, got {type(values).__name__}")
        merged = {**(values or {}), **{k: v for k, v in named.items() if v is not None}}
        try:
            return (fill_template(template, merged),)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None


class TextTrim:
    DESCRIPTION = "Remove whitespace (or the given characters) from the start, the end or both."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": _text("The text to trim.", multiline=True),
            "side": (["both", "start", "end"], {"default": "both", "tooltip": "Which ends to trim."}),
            "characters": _text("Characters to remove; empty means whitespace."),
        }}

    def run(self, text, side, characters):
        chars = characters or None
        trim = {"both": text.strip, "start": text.lstrip, "end": text.rstrip}.get(side)
        if trim is None:
            raise ValueError(f"unknown side {side!r}; choose both, start or end")
        return (trim(chars),)


_CASES = {
    "lower": str.lower,
    "upper": str.upper,
    "title": str.title,
    "capitalize": str.capitalize,
    "swapcase": str.swapcase,
}


class TextCase:
    DESCRIPTION = "Change letter case: lower, UPPER, Title, Capitalize the first letter, or swap."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": _text("The text to change.", multiline=True),
            "case": (list(_CASES), {"default": "lower", "tooltip": "The case to convert to."}),
        }}

    def run(self, text, case):
        if case not in _CASES:
            raise ValueError(f"unknown case {case!r}; choose one of {', '.join(_CASES)}")
        return (_CASES[case](text),)


class TextLength:
    DESCRIPTION = "The number of characters in a text."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("length",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": _text("The text to measure.", multiline=True)}}

    def run(self, text):
        return (len(text),)


def parse_number(text: str) -> float | int:
    """Read `text` as an int when it is one, else as a finite float; a clear error otherwise."""
    cleaned = text.strip()
    try:
        return int(cleaned)
    except ValueError:
        pass
    try:
        number = float(cleaned)
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number")
    return number


class TextToNumber:
    DESCRIPTION = "Read a number from text, e.g. ' 42 ' or '3.5e2'; the integer output drops any fraction."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("INT", "FLOAT")
    RETURN_NAMES = ("int", "float")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": _text("Text holding one number.")}}

    def run(self, text):
        number = parse_number(text)
        return (int(number), float(number))


NODE_CLASS_MAPPINGS = {
    "TextConcatenate": TextConcatenate,
    "TextReplace": TextReplace,
    "TextRegexMatch": TextRegexMatch,
    "TextRegexReplace": TextRegexReplace,
    "TextRegexExtract": TextRegexExtract,
    "TextSplit": TextSplit,
    "TextJoin": TextJoin,
    "TextTemplate": TextTemplate,
    "TextTrim": TextTrim,
    "TextCase": TextCase,
    "TextLength": TextLength,
    "TextToNumber": TextToNumber,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "TextConcatenate": "Concatenate Text",
    "TextReplace": "Replace Text",
    "TextRegexMatch": "Regex Match",
    "TextRegexReplace": "Regex Replace",
    "TextRegexExtract": "Regex Extract",
    "TextSplit": "Split Text",
    "TextJoin": "Join Text",
    "TextTemplate": "Format Template",
    "TextTrim": "Trim Text",
    "TextCase": "Change Case",
    "TextLength": "Text Length",
    "TextToNumber": "Text to Number",
}
