"""Validation problems as lines a person reads in a terminal.

The JSON that validation produces keeps ComfyUI's wording and shapes (clients parse it). A terminal user needs
something else: one line per problem, saying where first (node, then input), what is wrong, and the fix last —
without ComfyUI's generic header ("Prompt outputs failed validation") or its terse `details` (`"value, 'abc'"`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_GENERIC_HEADERS = frozenset({"prompt_outputs_failed_validation"})


def problem_lines(error: Mapping[str, Any] | None, node_errors: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per problem: the prompt-level error (unless it only heads the node errors), then each node's."""
    lines: list[str] = []
    node_issues = [issue for entry in node_errors.values() for issue in entry.get("errors", ())]
    if error is not None and error.get("type") not in _GENERIC_HEADERS and error not in node_issues:
        details = error.get("details") or ""
        lines.append(f"{error.get('message', '')}{': ' + details if details else ''}")
    for node_id, entry in node_errors.items():
        for issue in entry.get("errors", ()):
            lines.append(node_problem(node_id, str(entry.get("class_type") or "?"), issue))
    return lines


def node_problem(node_id: str, class_type: str, issue: Mapping[str, Any]) -> str:
    """`node 3 (TextValue), input 'value': <what is wrong> — <details or fix>`."""
    extra = issue.get("extra_info") if isinstance(issue.get("extra_info"), Mapping) else {}
    input_name = extra.get("input_name")
    where = f"node {node_id} ({class_type})" + (f", input {input_name!r}" if input_name else "")
    return f"{where}: {what_is_wrong(issue)}"


def what_is_wrong(issue: Mapping[str, Any]) -> str:
    """The problem of one issue without where it is: "'abc' is not an INT value"."""
    extra = issue.get("extra_info") if isinstance(issue.get("extra_info"), Mapping) else {}
    input_name = extra.get("input_name")
    kind, message = issue.get("type"), str(issue.get("message", ""))
    if kind == "required_input_missing" and extra.get("unknown_input"):
        return f"unknown input {extra['unknown_input']!r} (did you mean {input_name!r}?)"
    if kind == "required_input_missing":
        return "required input is missing (connect a link or give a value)"
    if kind == "invalid_input_type" and "received_value" in extra:
        expected = (extra.get("input_config") or [None])[0]
        return f"{extra['received_value']!r} is not {_article(str(expected))} {expected} value"
    if kind == "custom_validation_failed":  # details are "<name> - <the node's own message>": the message says it
        return str(issue.get("details") or "").partition(" - ")[2] or message
    details = _without_input_prefix(str(issue.get("details") or ""), input_name)
    message = message[:1].lower() + message[1:] if message[:2] != message[:2].upper() else message
    return f"{message}{' — ' + details if details else ''}"


def _without_input_prefix(details: str, input_name: Any) -> str:
    """ComfyUI's details start with the input's name (`"value, 'abc'"`); the line already says it."""
    if not input_name:
        return details
    name = str(input_name)
    if details == name:
        return ""
    for separator in (", ", ": "):
        if details.startswith(name + separator):
            return details[len(name) + len(separator):]
    return details


def _article(word: str) -> str:
    return "an" if word[:1].upper() in "AEIOU" else "a"
