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
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from partyflow.channels.config import ChannelConfig
from partyflow.llm.types import AssistantMessage, UserMessage
from partyflow.memory import SessionStore
from partyflow.server.published import Catalog, ChatTurn, Publication, apply_turn, as_text, usage_from
from partyflow.store.sqlite import StoreConnection, migrate, open_database, transaction

logger = logging.getLogger("partyflow.channels")

HISTORY_TURNS = 20  # earlier messages of the conversation given to the workflow
MAX_INPUT_CHARS = 32_000  # a longer message is declined (Slack allows 40,000 characters; no workflow needs more)
MIGRATIONS = ["CREATE TABLE channel_events (channel TEXT NOT NULL, event_id TEXT NOT NULL, seen REAL NOT NULL,"
              " PRIMARY KEY (channel, event_id))",
              # one row per answered message: who asked, when, which workflow, what it cost (`channels history`)
              "CREATE TABLE channel_turns (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL,"
              " platform TEXT NOT NULL, session_id TEXT NOT NULL, chat TEXT NOT NULL, user TEXT NOT NULL,"
              " event_id TEXT NOT NULL, workflow TEXT NOT NULL, prompt_id TEXT, status TEXT NOT NULL,"
              " received REAL NOT NULL, answered REAL, prompt_tokens INTEGER NOT NULL DEFAULT 0,"
              " completion_tokens INTEGER NOT NULL DEFAULT 0, estimated INTEGER NOT NULL DEFAULT 0, cost REAL,"
              " text TEXT NOT NULL, answer TEXT NOT NULL,"
              " attachments TEXT NOT NULL DEFAULT '[]');"
              " CREATE INDEX channel_turns_by_channel ON channel_turns (channel, id)"]


@dataclass(frozen=True)
class Inbound:
    """One user message from a platform, reduced to what partyflow needs."""

    event_id: str
    chat_id: str
    user_id: str
    text: str
    thread_id: str | None = None
    space: str | None = None  # the server/workspace the chat belongs to (a Discord guild id, "dm" for DMs)


@dataclass(frozen=True)
class Attachment:
    """A file from an IMAGE or AUDIO output, ready to upload."""

    filename: str
    data: bytes
    kind: str  # "image" | "audio"
    mime: str


@dataclass(frozen=True)
class Reply:
    text: str
    attachments: tuple[Attachment, ...] = ()


class Outbox(Protocol):
    """What a platform adapter does for the runtime."""

    limit: int  # the platform's longest message, in characters

    async def typing(self, message: Inbound) -> None: ...

    async def send(self, message: Inbound, text: str) -> None: ...


class FileOutbox(Outbox, Protocol):
    """An adapter that can also upload images and audio (`send_file`)."""

    async def send_file(self, message: Inbound, attachment: Attachment) -> None: ...


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
        """In the allow-lists: `allow_chats` names chats, or whole spaces (a Discord guild id, "dm")."""
        chats, users = self.config.allow_chats, self.config.allow_users
        chat_ok = chats is None or message.chat_id in chats or (message.space is not None and message.space in chats)
        return chat_ok and (users is None or message.user_id in users)

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

        Returns what happened: "answering", "duplicate", "not allowed", "rate limited", "too long".
        """
        if not self.allowed(message):
            logger.warning("channel %s: ignored a message from chat %s user %s (not in the allow-lists)",
                           self.config.name, message.chat_id, message.user_id)
            return "not allowed"
        if not self.first_delivery(message.event_id):
            return "duplicate"
        if len(message.text) > MAX_INPUT_CHARS:
            notice = f"That message is too long for me ({len(message.text):,} characters; at most {MAX_INPUT_CHARS:,})."
            self._record(replace(message, text=message.text[:500] + "…"), time.time(), status="too long",
                         answer=notice)
            self._background(outbox.send(message, notice))
            return "too long"
        if not self.within_rate(message.chat_id):
            notice = "Too many messages at once: please wait a minute."
            self._record(message, time.time(), status="rate limited", answer=notice)
            self._background(outbox.send(message, notice))
            return "rate limited"
        self._background(self.handle(message, outbox))
        return "answering"

    async def handle(self, message: Inbound, outbox: Outbox) -> None:
        received = time.time()
        every = getattr(outbox, "typing_every", None)
        typing = None
        if await self._typing(message, outbox) and every:
            typing = asyncio.get_running_loop().create_task(self._keep_typing(message, outbox, every))
        try:
            reply = await self.answer(message, received=received)
        except ChannelRunError as exc:
            logger.error("channel %s: %s", self.config.name, exc)
            self._record(message, received, status="failed", answer=str(exc))
            reply = Reply("Sorry, I could not answer that (the workflow failed; the server log has the details).")
        finally:
            if typing is not None:
                typing.cancel()
                await asyncio.gather(typing, return_exceptions=True)
        for part in split_text(reply.text, outbox.limit) if reply.text.strip() or not reply.attachments else []:
            await outbox.send(message, part)
        for attachment in reply.attachments:
            if hasattr(outbox, "send_file"):
                await outbox.send_file(message, attachment)
            else:
                logger.warning("channel %s: %s cannot carry files; %s not sent", self.config.name,
                               self.config.type, attachment.filename)

    async def _typing(self, message: Inbound, outbox: Outbox) -> bool:
        """Best effort: a platform refusing the indicator (a missing permission) must not stop the answer."""
        try:
            await outbox.typing(message)
            return True
        except Exception as exc:  # any SDK error: the answer matters more than the indicator
            logger.warning("channel %s: the typing indicator failed: %s", self.config.name, exc)
            return False

    async def _keep_typing(self, message: Inbound, outbox: Outbox, every: float) -> None:
        """Renew the indicator while the workflow runs (platforms show it for 5-10 seconds)."""
        while True:
            await asyncio.sleep(every)
            if not await self._typing(message, outbox):
                return

    async def answer(self, message: Inbound, *, received: float | None = None) -> Reply:
        publication = self.publication()
        session = self.session_id(message)
        history = [{"role": m.role, "content": m.content if isinstance(m.content, str) else ""}
                   for m in self._memory.messages(session)[-HISTORY_TURNS:] if m.role in ("user", "assistant")]
        turn = ChatTurn(text=message.text, history=history)
        extra = attachment_outputs(publication)
        usage_node = [publication.usage[0]] if publication.usage else []
        wanted = list(dict.fromkeys([publication.output[0], *usage_node, *(node for node, _ in extra)]))
        try:
            prompt = apply_turn(publication, self.engine.load_workflow(publication.document), turn, self._inputs)
            result = await self.engine.run_async(prompt, outputs=wanted)
        except ValueError as exc:  # PromptValidationError, PublishError
            raise ChannelRunError(f"{publication.path.name}: {exc}") from exc
        if not result.ok:
            raise ChannelRunError(f"{publication.path.name} {result.status}: "
                                  f"{result.error.describe() if result.error else 'interrupted'}")
        main = _safe_output(result, *publication.output)
        files = as_attachments(main, "output")
        text = "" if files else as_text(main)  # an IMAGE/AUDIO answer is sent as files, with no text
        for index, (node, slot) in enumerate(extra):
            files.extend(as_attachments(_safe_output(result, node, slot), f"output{index + 1}"))
        usage, cost = self._usage(result, publication, turn, text)
        now = time.time()
        self._memory.append(session, [UserMessage(content=message.text, name=_name(message.user_id)),
                                      AssistantMessage(content=text or ", ".join(f.filename for f in files))],
                            metadata={"channel": self.config.name, "platform": self.config.type,
                                      "chat": message.chat_id, "user": message.user_id,
                                      "workflow": publication.model, "prompt_id": result.prompt_id,
                                      "tokens": usage["total_tokens"], "at": now})
        self._record(message, received or now, status="answered", answer=text, prompt_id=result.prompt_id,
                     usage=usage, cost=cost, files=[f.filename for f in files])
        return Reply(text, tuple(files))

    def _usage(self, result: Any, publication: Publication, turn: ChatTurn, text: str,
               ) -> tuple[dict[str, int], float | None]:
        """Tokens and cost of one answer: the usage ledger's measured model calls (and their prices) when the
        workflow's models are metered; else the workflow's declared usage output; else an estimate
        (`estimated` = 1)."""
        services = getattr(getattr(self.engine, "host", None), "usage", None)
        totals = None
        if services is not None:
            try:
                totals = services.prompt_usage(result.prompt_id)
            except Exception:  # the ledger is optional bookkeeping: never lose the answer over it
                logger.exception("channel %s: reading the usage ledger failed", self.config.name)
        if totals:
            prompt, completion = int(totals["prompt_tokens"]), int(totals["completion_tokens"])
            cost = totals.get("cost")
            return ({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                     "estimated": 0}, float(cost) if isinstance(cost, (int, float)) else None)
        reports = []
        if publication.usage is not None:
            try:
                reports.append(result.output(*publication.usage))
            except (KeyError, IndexError):
                pass
        usage = usage_from(reports, turn, text)
        counted = any(isinstance(r, dict) and isinstance(r.get("prompt_tokens"), int) for r in reports)
        return {**usage, "estimated": 0 if counted else 1}, None

    def _record(self, message: Inbound, received: float, *, status: str, answer: str, prompt_id: str | None = None,
                usage: dict[str, int] | None = None, cost: float | None = None, files: list[str] | None = None,
                ) -> None:
        usage = usage or {}
        with transaction(self._events) as conn:
            conn.execute(
                "INSERT INTO channel_turns (channel, platform, session_id, chat, user, event_id, workflow, prompt_id,"
                " status, received, answered, prompt_tokens, completion_tokens, estimated, cost, text, answer,"
                " attachments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.config.name, self.config.type, self.session_id(message), message.chat_id, message.user_id,
                 message.event_id, self.config.model, prompt_id, status, received, time.time(),
                 usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), usage.get("estimated", 0), cost,
                 message.text, answer, json.dumps(files or [])))

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


def channel_history(db: Any, channel: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
    """The latest answered (or failed) channel messages, newest first: who, when, which workflow, cost."""
    query = ("SELECT channel, platform, session_id, chat, user, event_id, workflow, prompt_id, status, received,"
             " answered, prompt_tokens, completion_tokens, estimated, cost, text, answer, attachments"
             " FROM channel_turns")
    query += " WHERE channel = ?" if channel else ""
    rows = db.execute(query + " ORDER BY id DESC LIMIT ?", (*([channel] if channel else []), limit)).fetchall()
    keys = ("channel", "platform", "session", "chat", "user", "event_id", "workflow", "prompt_id", "status",
            "received", "answered", "prompt_tokens", "completion_tokens", "estimated", "cost", "text", "answer",
            "attachments")
    return [{**dict(zip(keys, row, strict=True)), "estimated": bool(row[13]), "attachments": json.loads(row[-1])}
            for row in rows]


def open_history(state_db: Any) -> StoreConnection:
    """The channels' tables in state.sqlite (created if new)."""
    conn = open_database(state_db)
    migrate(conn, "channels", MIGRATIONS)
    return conn


def attachment_outputs(publication: Publication) -> list[tuple[str, int]]:
    """Extra outputs a published workflow sends as files: `extra.partyflow.publish.attachments`,
    a list of `{"node": 7, "output": 0}` (IMAGE or AUDIO outputs); malformed entries are ignored."""
    extra = publication.document.get("extra")
    marker = ((extra or {}).get("partyflow") or {}).get("publish") if isinstance(extra, dict) else None
    entries = marker.get("attachments") if isinstance(marker, dict) else None
    found = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("output", 0), int) and entry.get("node") is not None:
            found.append((str(entry["node"]), int(entry.get("output", 0))))
    return found


def as_attachments(value: Any, stem: str) -> list[Attachment]:
    """IMAGE tensors ([B,H,W,C], one PNG per image) and AUDIO dicts ({"waveform", "sample_rate"}, one WAV per
    batch item) as files; anything else is not a file (an empty list)."""
    if isinstance(value, dict) and "waveform" in value and "sample_rate" in value:
        from partyflow.media.audio import encode_audio

        waveform = value["waveform"]
        batch = waveform if getattr(waveform, "ndim", 0) == 3 else waveform[None]
        files = []
        for index, item in enumerate(batch):
            data, ext = encode_audio(item, int(value["sample_rate"]), "wav")
            files.append(Attachment(f"{stem}-{index + 1}.{ext}", data, "audio", f"audio/{ext}"))
        return files
    if getattr(value, "ndim", 0) == 4 and hasattr(value, "detach") and value.shape[-1] in (1, 3, 4):
        from partyflow.media.images import encode_png

        return [Attachment(f"{stem}-{index + 1}.png", encode_png(value[index]), "image", "image/png")
                for index in range(value.shape[0])]
    return []


def _safe_output(result: Any, node: str, index: int) -> Any:
    try:
        return result.output(node, index)
    except (KeyError, IndexError):
        raise ChannelRunError(f"output {index} of node {node} produced nothing") from None


def _name(user_id: str) -> str | None:
    """An OpenAI-style message name (letters, digits, _ and -, at most 64), so the memory says who spoke."""
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in user_id)[:64]
    return cleaned or None


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
