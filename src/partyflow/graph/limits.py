"""How deep a JSON-like value may nest: one bound shared by the server's body reader and prompt validation.

Why a bound at all: Python's parser, `copy`, `json.dumps` and every recursive walk over a value stop with a
`RecursionError` somewhere near 1,000 levels, and where exactly depends on how deep the caller's own stack already
is. A value nested a few hundred levels deep is never a real workflow or setting, only an attack or a bug, so it is
refused up front with a clear reason instead of failing later, in some other place, as a server error.
"""

from __future__ import annotations

from typing import Any

MAX_JSON_DEPTH = 128


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `value` nests lists/dicts more than `limit` levels deep. Iterative: safe on any depth."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list, tuple)))
    return False
