"""Windows over a conversation: the most recent messages that fit a count or a token budget.

A window never starts inside a tool exchange: a tool result whose call was cut off (or an assistant call whose
results were) makes providers reject the request, so the cut moves forward to the next user message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from partyflow.llm import Message, SystemMessage, UserMessage
from partyflow.memory.store import estimate_tokens


def window(messages: Sequence[Message], *, max_messages: int | None = None, max_tokens: int | None = None,
           count_tokens: Callable[[Message], int] = estimate_tokens) -> tuple[Message, ...]:
    """The newest messages within both limits (None: no limit), starting at a user message when cut."""
    kept = [m for m in messages if not isinstance(m, SystemMessage)]
    start = 0
    if max_messages is not None:
        start = max(0, len(kept) - max_messages)
    if max_tokens is not None:
        total = 0
        index = len(kept)
        while index > start and total + count_tokens(kept[index - 1]) <= max_tokens:
            index -= 1
            total += count_tokens(kept[index])
        start = index
    return tuple(kept[safe_start(kept, start):])


def safe_start(messages: Sequence[Message], start: int) -> int:
    """The first index at or after `start` where a conversation can begin (a user message); len() if none."""
    if start <= 0:
        return 0
    for index in range(start, len(messages)):
        if isinstance(messages[index], UserMessage):
            return index
    return len(messages)
