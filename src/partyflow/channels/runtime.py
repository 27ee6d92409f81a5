"""What every platform shares: from a verified incoming message to a posted answer.

A platform adapter verifies the request, acknowledges it within the platform's deadline and hands an
`Inbound` message to `ChannelRuntime.handle` (in the background). The runtime refuses chats and users outside the
allow-lists, drops redelivered events (their ids are remembered in state.sqlite, so a restart does not answer
twice), limits answers per chat, runs the published workflow with the conversation's memory, posts the answer
split to the platform's message limit, and records both messages in the memory session with who, when, which
workflow and the tokens spent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from partyflow.channels.config import ChannelConfig
from partyflow.llm.types import AssistantMessage, UserMessage
from partyflow.memory import SessionStore
from partyflow.server.published import Catalog, ChatTurn, Publication, apply_turn, as_text, usage_from
from partyflow.store.sqlite import StoreConnection, migrate, open_database, transaction

logger = logging.getLogger("partyflow.channels")

HISTORY_TURNS = 20  # earlier messages of the conversation given to the workflow
MIGRATIONS = ["CREATE TABLE channel_events (channel TEXT NOT NULL, event_id TEXT NOT NULL, seen REAL NOT NULL,"
              " PRIMARY KEY (channel, event_id))"]


@dataclass(frozen=True)
class Inbound:
    """One user message from a platform, reduced to what partyflow needs."""

    event_id: str
    chat_id: str
    user_id: str
    text: str
    thread_id: str | None = None


class Outbox(Protocol):
    """What a platform adapter does for the runtime."""

    limit: int  # the platform's longest message, in characters

    async def typing(self, message: Inbound) -> None: ...

    async def send(self, message: Inbound, text: str) -> None: ...


class ChannelRuntime:
    def __init__(self, engine: Any, config: ChannelConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.config = engine, config
        self._catalog = Catalog()
        self._events: StoreConnection = open_database(engine.home.state_db)
        migrate(self._events, "channels", MIGRATIONS)
        self._memory = SessionStore.open(engine.home.state_db)
        self._recent: dict[str, deque[float]] = {}
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        self._events.close()
        self._memory.close()

    # ---- the checks, before anything runs ---------------------------------------------------------------------

    def allowed(self, message: Inbound) -> bool:
        chats, users = self.config.allow_chats, self.config.allow_users
        return (chats is None or message.chat_id in chats) and (users is None or message.user_id in users)

    def first_delivery(self, event_id: str) -> bool:
        """True the first time an event id is seen (platforms redeliver when an acknowledgement is late)."""
        with transaction(self._events):
            done = self._events.execute("INSERT OR IGNORE INTO channel_events (channel, event_id, seen) VALUES (?, ?, ?)",
                                        (self.config.name, event_id, time.time()))
        return done.rowcount == 1

    def within_rate(self, chat_id: str) -> bool:
        now, window = self._clock(), self._recent.setdefault(chat_id, deque())
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= self.config.rate_per_minute:
            return False
        window.append(now)
        return True

    def session_id(self, message: Inbound) -> str:
        key = {"chat": message.chat_id, "user": f"{message.chat_id}:{message.user_id}",
               "thread": f"{message.chat_id}:{message.thread_id or message.event_id}"}[self.config.session]
        return f"channel:{self.config.name}:{key}"[:200]

    # ---- answering --------------------------------------------------------------------------------------------

    def accept(self, message: Inbound, outbox: Outbox) -> str:
        """Decide at once (within the platform's acknowledgement deadline) and answer in the background.

        Returns what happened: "answering", "duplicate", "not allowed", "rate limited".
        """
        if not self.allowed(message):
            logger.warning("channel %s: ignored a message from chat %s user %s (not in the allow-lists)",
                           self.config.name, message.chat_id, message.user_id)
            return "not allowed"
        if not self.first_delivery(message.event_id):
            return "duplicate"
        if not self.within_rate(message.chat_id):
            self._background(outbox.send(message, "Too many messages at once: please wait a minute."))
            return "rate limited"
        self._background(self.handle(message, outbox))
        return "answering"

    async def handle(self, message: Inbound, outbox: Outbox) -> None:
        try:
            await outbox.typing(message)
            answer = await self.answer(message)
        except ChannelRunError as exc:
            logger.error("channel %s: %s", self.config.name, exc)
            answer = "Sorry, I could not answer that (the workflow failed; the server log has the details)."
        for part in split_text(answer, outbox.limit):
            await outbox.send(message, part)

    async def answer(self, message: Inbound) -> str:
        publication = self.publication()
        session = self.session_id(message)
        history = [{"role": m.role, "content": m.content if isinstance(m.content, str) else ""}
                   for m in self._memory.messages(session)[-HISTORY_TURNS:] if m.role in ("user", "assistant")]
        turn = ChatTurn(text=message.text, history=history)
        try:
            prompt = apply_turn(publication, self.engine.load_workflow(publication.document), turn, self._inputs)
            result = await self.engine.run_async(prompt, outputs=[publication.output[0]])
        except ValueError as exc:  # PromptValidationError, PublishError
            raise ChannelRunError(f"{publication.path.name}: {exc}") from exc
        if not result.ok:
            raise ChannelRunError(f"{publication.path.name} {result.status}: "
                                  f"{result.error.describe() if result.error else 'interrupted'}")
        text = as_text(result.output(*publication.output))
        usage = usage_from([], turn, text)
        self._memory.append(session, [UserMessage(content=message.text), AssistantMessage(content=text)], metadata={
            "channel": self.config.name, "platform": self.config.type, "chat": message.chat_id,
            "user": message.user_id, "workflow": publication.model, "prompt_id": result.prompt_id,
            "tokens": usage["total_tokens"], "at": time.time()})
        return text

    def publication(self) -> Publication:
        folder = self.engine.home.user / self.config.owner / "workflows"
        publication = self._catalog.models(folder).get(self.config.model)
        if publication is None:
            raise ChannelRunError(f"no published workflow {self.config.model!r} in {folder} (publish it from the "
                                  "editor or with Workflow.publish)")
        return publication

    def _inputs(self, class_type: str) -> list[str]:
        info = self.engine.object_info(class_type).get(class_type, {})
        return [name for section in info.get("input", {}).values() for name in section]

    def _background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("channel %s: answering failed", self.config.name, exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for the answers in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class ChannelRunError(RuntimeError):
    """The published workflow could not answer; logged, and the user gets a short apology."""


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at a paragraph, line or word boundary where there is one."""
    text = text.strip() or "(empty answer)"
    parts = []
    while len(text) > limit:
        window = text[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        cut = cut if cut > limit // 2 else limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    parts.append(text)
    return parts
