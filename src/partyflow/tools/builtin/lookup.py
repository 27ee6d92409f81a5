"""A lookup tool over short text entries (an FAQ, a price list): the entries sharing the most words with the query.

Word overlap, not embeddings, on purpose: it needs no model and no index, it is instant for the hundreds of entries
such a list holds, and its results are easy to predict when writing the entries.
"""

from __future__ import annotations

import re

from partyflow.tools.base import Tool
from partyflow.tools.functions import function_tool

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("a an and are can do does for how i in is it my of on or the to what when where who why with "
                  "you your".split())


def split_entries(text: str) -> list[str]:
    """Entries separated by blank lines."""
    return [block.strip() for block in re.split(r"\n\s*\n", text) if block.strip()]


def best_entries(entries: list[str], query: str, limit: int = 3) -> list[str]:
    wanted = _words(query)
    scored = [(len(wanted & _words(entry)), -index, entry) for index, entry in enumerate(entries)]
    scored = [item for item in scored if item[0] > 0]
    return [entry for _, _, entry in sorted(scored, reverse=True)[:limit]]


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def lookup_tool(entries: str | list[str], *, name: str = "faq_lookup", description: str = "",
                limit: int = 3) -> Tool:
    items = split_entries(entries) if isinstance(entries, str) else list(entries)

    def lookup(query: str) -> dict[str, object]:
        """Find the entries that best match a question or keywords.

        Args:
            query: The question or keywords to look up.
        """
        found = best_entries(items, query, limit)
        return {"matches": found} if found else {"matches": [], "note": "nothing matches; try other words"}

    return function_tool(lookup, name=name, description=description or "Look up answers in the reference entries.")
