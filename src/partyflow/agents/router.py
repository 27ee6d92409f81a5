"""Intent classification: one model call that puts a text into one of N named categories.

The model is asked for a JSON object naming the category, and the answer is matched leniently (case, spacing,
quotes) against the names; anything unmatched falls to the fallback category instead of failing, because a router
that crashes on an odd reply takes the whole workflow down with it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from partyflow.llm import ChatModel, ChatRequest, SystemMessage, Usage, UserMessage


@dataclass(frozen=True)
class Category:
    name: str
    description: str = ""


@dataclass(frozen=True)
class Intent:
    """The chosen category, its position in the list, and whether the model's answer matched a name."""

    category: str
    index: int
    matched: bool
    raw: str
    usage: Usage


def parse_categories(text: str) -> list[Category]:
    """Categories from text, one per line: `name: description` or just `name`; blank and '#' lines skipped."""
    found: list[Category] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, description = line.partition(":")
        found.append(Category(name.strip(), description.strip()))
    names = [c.name.lower() for c in found]
    if len(set(names)) != len(names):
        raise ValueError("category names must be unique")
    return found


async def classify(model: ChatModel, text: str, categories: Sequence[Category], *, model_name: str | None = None,
                   instructions: str = "", fallback: int | None = None) -> Intent:
    """The category of `text`; `fallback` (default: the last category) is used when the reply names none."""
    if not categories:
        raise ValueError("intent classification needs at least one category")
    listing = "\n".join(f"- {c.name}" + (f": {c.description}" if c.description else "") for c in categories)
    system = ("Classify the user's message into exactly one of these categories:\n" + listing +
              '\nAnswer with only a JSON object: {"category": "<name>"}.' +
              (f"\n{instructions}" if instructions.strip() else ""))
    # No response_format: many servers lack JSON-schema mode, and providers refuse a non-JSON reply to one,
    # while a lenient reading of a plain reply ("I think billing.") still routes correctly.
    request = ChatRequest(messages=(SystemMessage(content=system), UserMessage(content=text)), model=model_name,
                          temperature=0)
    response = await model.achat(request)
    index = match_category(response.text, categories)
    chosen = index if index is not None else (fallback if fallback is not None else len(categories) - 1)
    return Intent(categories[chosen].name, chosen, index is not None, response.text, response.usage or Usage())


def match_category(reply: str, categories: Sequence[Category]) -> int | None:
    """The index of the category a reply names: the JSON `category` field, else a bare name in the text."""
    names = [_norm(c.name) for c in categories]
    try:
        value = json.loads(reply)
        candidate = value.get("category") if isinstance(value, dict) else value
    except json.JSONDecodeError:
        candidate = reply
    if isinstance(candidate, str) and _norm(candidate) in names:
        return names.index(_norm(candidate))
    words = set(re.findall(r"[\w-]+", reply.lower()))
    hits = [i for i, name in enumerate(names) if name in words]
    return hits[0] if len(hits) == 1 else None


def _norm(name: str) -> str:
    return name.strip().strip("\"'`").strip().lower()
