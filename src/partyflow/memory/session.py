"""A session as an agent uses it: load the context (summary + recent window), save a run, compact old turns.

Summaries keep long conversations affordable: older turns are replaced in the context by a model-written summary
that is itself updated incrementally (the previous summary plus the newly old turns), while the full messages
stay in the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from partyflow.llm import ChatModel, ChatRequest, Message, SystemMessage, Usage, UserMessage
from partyflow.memory.store import SessionStore
from partyflow.memory.window import safe_start, window

SUMMARY_HEADING = "Summary of the earlier conversation:"


@dataclass(frozen=True)
class MemoryContext:
    summary: str
    messages: tuple[Message, ...]

    def as_messages(self) -> tuple[Message, ...]:
        """The context as one message list: the summary (as a system message) first, then the window."""
        if not self.summary:
            return self.messages
        return (SystemMessage(content=f"{SUMMARY_HEADING}\n{self.summary}"), *self.messages)


class SessionMemory:
    """One session of a `SessionStore`, with the windowing and summarising policy of its caller."""

    def __init__(self, store: SessionStore, session_id: str, *, max_messages: int | None = None,
                 max_tokens: int | None = None) -> None:
        self.store = store
        self.session_id = session_id
        self.max_messages = max_messages
        self.max_tokens = max_tokens

    def load(self) -> MemoryContext:
        info = self.store.session(self.session_id)
        if info is None:
            return MemoryContext("", ())
        recent = self.store.messages(self.session_id, after=info.summary_upto)
        return MemoryContext(info.summary, window(recent, max_messages=self.max_messages, max_tokens=self.max_tokens,
                                                  count_tokens=self.store.count_tokens))

    def save(self, messages: Sequence[Message]) -> int:
        """Append a run's new messages (system messages are configuration, not conversation, and are skipped)."""
        kept = [m for m in messages if not isinstance(m, SystemMessage)]
        return self.store.append(self.session_id, kept) if kept else 0

    async def compact(self, model: ChatModel, *, keep_last: int = 10, model_name: str | None = None,
                      max_words: int = 200) -> Usage:
        """Summarise all but the last `keep_last` unsummarised messages (cut at a user message) into the summary."""
        info = self.store.session(self.session_id)
        if info is None:
            return Usage()
        entries = self.store.entries(self.session_id, after=info.summary_upto)
        cut = safe_start([e.message for e in entries], max(0, len(entries) - keep_last))
        if cut == 0:
            return Usage()
        old = entries[:cut]
        summary, usage = await summarize(model, [e.message for e in old], previous=info.summary,
                                         model_name=model_name, max_words=max_words)
        self.store.set_summary(self.session_id, summary, old[-1].seq)
        return usage


async def summarize(model: ChatModel, messages: Sequence[Message], *, previous: str = "",
                    model_name: str | None = None, max_words: int = 200) -> tuple[str, Usage]:
    """A summary of `messages` (extending `previous`), in at most about `max_words` words."""
    lines = []
    for message in messages:
        text = getattr(message, "text", "") or ""
        calls = getattr(message, "tool_calls", ())
        if calls:
            text += " " + "; ".join(f"[called {c.name}({c.arguments})]" for c in calls)
        if text.strip():
            lines.append(f"{message.role}: {text.strip()}")
    prompt = ((f"Summary so far:\n{previous}\n\n" if previous else "") + "New conversation turns:\n" +
              "\n".join(lines) + f"\n\nWrite an updated summary in at most {max_words} words. Keep names, numbers, "
              "decisions, open questions and the user's preferences; drop small talk.")
    request = ChatRequest(messages=(SystemMessage(content="You summarise conversations for later reference."),
                                    UserMessage(content=prompt)), model=model_name, temperature=0)
    response = await model.achat(request)
    return response.text.strip(), response.usage or Usage()
