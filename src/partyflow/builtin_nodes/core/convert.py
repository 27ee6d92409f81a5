"""How core nodes turn values into text, so every node shows a value the same way."""

from __future__ import annotations

import json
from typing import Any


def as_text(value: Any) -> str:
    """Strings as they are, JSON-compatible containers as JSON, anything else through `str`."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            return str(value)
    return str(value)
