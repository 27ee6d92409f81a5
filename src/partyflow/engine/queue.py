"""The persistent prompt queue and its history, in ComfyUI's shapes.

Every accepted prompt is a row in SQLite before `put` returns, so a crash loses nothing: a prompt that was running
when the process died goes back to pending (in its original place) the next time the queue is opened, and `finish`
moves a prompt into history in the same transaction that removes it from the queue.

One process consumes a given queue file: re-opening recovers *all* running items, and the wake-up that `next`
waits on is in-process. All methods are safe to call from any thread; listeners run on the thread that made the
change (a server hops to its event loop with ``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from partyflow.store.sqlite import migrate, open_database, transaction

__all__ = ["HistorySummary", "PromptQueue", "QueueItem"]

logger = logging.getLogger(__name__)

_SCHEMA = [
    """
    CREATE TABLE queue_items (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        prompt_id TEXT NOT NULL UNIQUE,
        number REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running')),
        prompt TEXT NOT NULL,
        extra_data TEXT NOT NULL,
        outputs_to_execute TEXT NOT NULL
    );
    CREATE INDEX queue_items_by_order ON queue_items (state, number, seq);
    CREATE TABLE queue_history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        prompt_id TEXT NOT NULL UNIQUE,
        number REAL NOT NULL,
        prompt TEXT NOT NULL,
        extra_data TEXT NOT NULL,
        outputs_to_execute TEXT NOT NULL,
        outputs TEXT NOT NULL,
        status TEXT NOT NULL,
        meta TEXT NOT NULL,
        finished_at REAL NOT NULL
    );
    -- The last number handed out, so numbers keep rising across restarts and cleared queues.
    CREATE TABLE queue_counter (id INTEGER PRIMARY KEY CHECK (id = 1), last_number REAL NOT NULL);
    INSERT INTO queue_counter (id, last_number) VALUES (1, 0);
    """,
]

_ITEM_COLUMNS = "number, prompt_id, prompt, extra_data, outputs_to_execute"

# Job summaries computed inside SQLite (history_page): when the prompt was created (ComfyUI's extra_data.create_time,
# else when it finished), how it ended, and when its run started and ended (from the status messages).
_CREATED_SQL = "COALESCE(json_extract(extra_data, '$.create_time'), CAST(finished_at * 1000 AS INTEGER))"
_OUTCOME_SQL = (
    "CASE WHEN json_extract(status, '$.status_str') = 'success' THEN 'completed'"
    " WHEN EXISTS (SELECT 1 FROM json_each(status, '$.messages')"
    " WHERE json_extract(value, '$[0]') = 'execution_interrupted') THEN 'cancelled' ELSE 'failed' END"
)
_START_SQL = (
    "SELECT json_extract(value, '$[1].timestamp') FROM json_each(status, '$.messages')"
    " WHERE json_extract(value, '$[0]') = 'execution_start' LIMIT 1"
)
_END_SQL = (
    "SELECT json_extract(value, '$[1].timestamp') FROM json_each(status, '$.messages') WHERE json_extract(value, '$[0]')"
    " IN ('execution_success', 'execution_error', 'execution_interrupted') LIMIT 1"
)


@dataclass(frozen=True)
class QueueItem:
    """One accepted prompt. Lower `number` runs first; ties run in the order they were accepted."""

    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs_to_execute: list[str]

    def as_comfy(self) -> list[Any]:
        """ComfyUI's queue entry: ``[number, prompt_id, prompt, extra_data, outputs_to_execute]``."""
        number = int(self.number) if float(self.number).is_integer() else self.number  # SQLite REAL: 1.0 -> 1
        return [number, self.prompt_id, self.prompt, self.extra_data, self.outputs_to_execute]


@dataclass(frozen=True)
class HistorySummary:
    """A finished prompt as job listings show it: no prompt or extra_data, times in milliseconds."""

    prompt_id: str
    number: float
    create_time: int
    workflow_id: str | None
    outcome: str  # completed, failed or cancelled
    started_ms: int | None
    ended_ms: int | None
    outputs: dict[str, Any]
    status: dict[str, Any]
    finished_at: float


class PromptQueue:
    """Pending and running prompts plus a bounded history, all persisted in one SQLite file."""

    def __init__(self, db_path: Path, *, max_history: int = 10_000) -> None:
        if max_history < 0:
            raise ValueError(f"max_history must be zero or more, not {max_history}")
        self.max_history = max_history
        self._conn = open_database(Path(db_path))
        self._listeners: list[Callable[[], None]] = []
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._signal_lock = threading.Lock()
        # queue_remaining as this process's last committed change left it (None: unknown, read the database)
        self._remaining: int | None = None
        try:
            migrate(self._conn, "queue", _SCHEMA)
            self._recover()
        except BaseException:
            self._conn.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database; the queue cannot be used afterwards."""
        with self._conn.lock:
            self._conn.close()

    def __enter__(self) -> PromptQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _recover(self) -> None:
        """Return items a crashed process left running to pending; their numbers keep their original places."""
        with self._write():
            recovered = self._conn.execute("UPDATE queue_items SET state = 'pending' WHERE state = 'running'")
            self._trim_history()
        if recovered.rowcount:
            logger.warning("requeued %d prompt(s) left running by an earlier process", recovered.rowcount)
            self._changed(wake=True)

    # -- the queue ---------------------------------------------------------------------------------------------

    def put(
        self,
        prompt: dict[str, Any],
        *,
        prompt_id: str | None = None,
        extra_data: dict[str, Any] | None = None,
        outputs_to_execute: list[str] | None = None,
        front: bool = False,
        number: float | None = None,
    ) -> QueueItem:
        """Accept a prompt; it is durable when this returns. ``front=True`` puts it before every pending prompt;
        an explicit `number` (ComfyUI's POST /prompt field) places it by that number instead.

        Raises ValueError when `prompt_id` is already queued or in history (history is keyed by prompt id).
        """
        prompt_id = prompt_id or str(uuid.uuid4())
        extra_data = {} if extra_data is None else extra_data
        outputs_to_execute = [] if outputs_to_execute is None else list(outputs_to_execute)
        encoded = _dump_all(prompt_id, prompt=prompt, extra_data=extra_data, outputs_to_execute=outputs_to_execute)
        with self._write():
            self._refuse_duplicate(prompt_id)
            if number is None:
                number = self._front_number() if front else self._next_number()
            self._conn.execute(
                f"INSERT INTO queue_items ({_ITEM_COLUMNS}) VALUES (?, ?, ?, ?, ?)", (number, prompt_id, *encoded)
            )
        self._changed(wake=True)
        return QueueItem(number, prompt_id, prompt, extra_data, outputs_to_execute)

    def claim(self) -> QueueItem | None:
        """Mark the first pending item running and return it, or None when nothing is pending."""
        with self._write():
            row = self._conn.execute(
                f"SELECT seq, {_ITEM_COLUMNS} FROM queue_items WHERE state = 'pending' ORDER BY number, seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            self._conn.execute("UPDATE queue_items SET state = 'running' WHERE seq = ?", (row[0],))
        self._changed()
        return _item(row[1:])

    async def next(self, stop: asyncio.Event | None = None) -> QueueItem | None:
        """Claim the next item, waiting for a `put` when the queue is empty; None once `stop` is set.

        The claim runs on the event loop on purpose: it is one short transaction, and a claim handed to a thread
        could complete after this coroutine was cancelled, leaving an item running that nobody executes.
        """
        loop = asyncio.get_running_loop()
        while stop is None or not stop.is_set():
            waiter = (loop, asyncio.Event())
            # Register before claiming, so a put landing between the claim and the wait is not missed.
            with self._signal_lock:
                self._waiters.add(waiter)
            try:
                item = self.claim()
                if item is not None:
                    return item
                await _first_set(waiter[1], stop)
            finally:
                with self._signal_lock:
                    self._waiters.discard(waiter)
        return None

    def finish(
        self, item: QueueItem, *, outputs: dict[str, Any], status: dict[str, Any], meta: dict[str, Any] | None = None
    ) -> None:
        """Move a running item into history, in one transaction; trims history past `max_history`.

        `status` is ComfyUI's ``{"status_str", "completed", "messages"}``; `outputs` maps node id to its UI dict.
        Raises ValueError when the item is not running (never claimed, or already finished).
        """
        encoded = _dump_all(
            item.prompt_id,
            prompt=item.prompt,
            extra_data=item.extra_data,
            outputs_to_execute=item.outputs_to_execute,
            outputs=outputs,
            status=status,
            meta=meta or {},
        )
        with self._write():
            removed = self._conn.execute(
                "DELETE FROM queue_items WHERE prompt_id = ? AND state = 'running'", (item.prompt_id,)
            )
            if removed.rowcount == 0:
                raise ValueError(f"prompt {item.prompt_id!r} is not running, so it cannot be finished")
            self._conn.execute(
                f"INSERT INTO queue_history ({_ITEM_COLUMNS}, outputs, status, meta, finished_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item.number, item.prompt_id, *encoded, time.time()),
            )
            self._trim_history()
        self._changed()

    def pending(self) -> list[QueueItem]:
        """Pending items in the order they will run."""
        return self._items("pending")

    def running(self) -> list[QueueItem]:
        return self._items("running")

    def remaining(self) -> int:
        """Pending plus running items: ComfyUI's ``queue_remaining``."""
        with transaction(self._conn, write=False):
            (count,) = self._conn.execute("SELECT COUNT(*) FROM queue_items").fetchone()
        return count

    def known_remaining(self) -> int:
        """`remaining()` as this process's last committed change left it, without touching the database.

        For the server's status broadcasts: they follow this process's own changes and run on the event loop, where
        a read would wait on the connection lock while another thread's commit waits for fsync. Falls back to
        `remaining()` until the first change (and after a failed write).
        """
        count = self._remaining
        return self.remaining() if count is None else count

    def delete(self, prompt_ids: Iterable[str]) -> int:
        """Remove these prompts if they are still pending; returns how many were removed. Running ones stay."""
        ids = [(prompt_id,) for prompt_id in prompt_ids]
        with self._write():
            removed = self._conn.executemany(
                "DELETE FROM queue_items WHERE prompt_id = ? AND state = 'pending'", ids
            ).rowcount
        if removed:
            self._changed()
        return removed

    def clear(self) -> int:
        """Remove every pending prompt; returns how many. Running ones stay."""
        with self._write():
            removed = self._conn.execute("DELETE FROM queue_items WHERE state = 'pending'").rowcount
        if removed:
            self._changed()
        return removed

    # -- history -----------------------------------------------------------------------------------------------

    def history(
        self, prompt_id: str | None = None, *, max_items: int | None = None, offset: int = 0
    ) -> dict[str, dict[str, Any]]:
        """Finished prompts in ComfyUI's shape, oldest first (newest last), or only `prompt_id` ({} if unknown).

        `offset` skips the oldest entries; a negative offset with `max_items` gives the newest `max_items`, as
        ComfyUI's ``GET /history?max_items=n`` does.
        """
        columns = f"{_ITEM_COLUMNS}, outputs, status, meta"
        with transaction(self._conn, write=False):
            if prompt_id is not None:
                rows = self._conn.execute(
                    f"SELECT {columns} FROM queue_history WHERE prompt_id = ?", (prompt_id,)
                ).fetchall()
            else:
                if offset < 0:
                    (count,) = self._conn.execute("SELECT COUNT(*) FROM queue_history").fetchone()
                    offset = max(count - max_items, 0) if max_items is not None else 0
                rows = self._conn.execute(
                    f"SELECT {columns} FROM queue_history ORDER BY seq LIMIT ? OFFSET ?",
                    (-1 if max_items is None else max_items, offset),
                ).fetchall()
        return {row[1]: _history_entry(row) for row in rows}

    def history_page(
        self, *, outcomes: Iterable[str] = ("completed", "failed", "cancelled"), newest_first: bool = True,
        by_duration: bool = False, limit: int | None = None, offset: int = 0, workflow_id: str | None = None,
        prompt_id: str | None = None,
    ) -> tuple[list[HistorySummary], int]:
        """One page of history as summaries (no prompt, no extra_data), and how many entries match in all.

        For job listings: the outcome, times and workflow id are read inside SQLite, so a page of 10,000 entries
        never decodes the stored workflows. `outcomes` filters by `completed`, `failed` and `cancelled` (an
        interrupted run or a cancelled pending prompt); entries sort by creation time, or by run time when
        `by_duration`, ties in the order they finished.
        """
        wanted = [o for o in outcomes if o in ("completed", "failed", "cancelled")]
        if not wanted:
            return [], 0
        where = f"({_OUTCOME_SQL}) IN ({', '.join('?' for _ in wanted)})"
        params: list[Any] = list(wanted)
        if workflow_id is not None:
            where += " AND json_extract(extra_data, '$.extra_pnginfo.workflow.id') = ?"
            params.append(workflow_id)
        if prompt_id is not None:
            where += " AND prompt_id = ?"
            params.append(prompt_id)
        key = f"({_END_SQL}) - ({_START_SQL})" if by_duration else _CREATED_SQL
        order = "DESC" if newest_first else "ASC"
        with transaction(self._conn, write=False):
            (total,) = self._conn.execute(f"SELECT COUNT(*) FROM queue_history WHERE {where}", params).fetchone()
            rows = self._conn.execute(
                f"SELECT prompt_id, number, {_CREATED_SQL}, json_extract(extra_data, '$.extra_pnginfo.workflow.id'),"
                f" {_OUTCOME_SQL}, ({_START_SQL}), ({_END_SQL}), outputs, status, finished_at FROM queue_history"
                f" WHERE {where} ORDER BY COALESCE({key}, 0) {order}, seq {order} LIMIT ? OFFSET ?",
                [*params, -1 if limit is None else limit, max(offset, 0)],
            ).fetchall()
        return [HistorySummary(row[0], row[1], int(row[2]), row[3] if isinstance(row[3], str) else None, row[4],
                               row[5], row[6], json.loads(row[7]), json.loads(row[8]), row[9]) for row in rows], total

    def cancel_pending(self, prompt_id: str, *, message: dict[str, Any] | None = None) -> bool:
        """Move a pending prompt into history as cancelled (one transaction); False when it is not pending.

        The history entry reads like an interrupted run (`status_str` "error" with an `execution_interrupted`
        message), so ComfyUI clients that only know success and error still see it did not complete.
        """
        now = time.time()
        data = {"prompt_id": prompt_id, "node_id": None, "node_type": None, "executed": [],
                "timestamp": int(now * 1000), **(message or {})}
        status = {"status_str": "error", "completed": False, "messages": [["execution_interrupted", data]]}
        with self._write():
            row = self._conn.execute(
                f"SELECT {_ITEM_COLUMNS} FROM queue_items WHERE prompt_id = ? AND state = 'pending'", (prompt_id,)
            ).fetchone()
            if row is None:
                return False
            self._conn.execute("DELETE FROM queue_items WHERE prompt_id = ? AND state = 'pending'", (prompt_id,))
            self._conn.execute(
                f"INSERT INTO queue_history ({_ITEM_COLUMNS}, outputs, status, meta, finished_at)"
                " VALUES (?, ?, ?, ?, ?, '{}', ?, '{}', ?)",
                (*row, json.dumps(status, separators=(",", ":")), now),
            )
            self._trim_history()
        self._changed()
        return True

    def delete_history(self, prompt_ids: Iterable[str]) -> int:
        ids = [(prompt_id,) for prompt_id in prompt_ids]
        with transaction(self._conn):
            return self._conn.executemany("DELETE FROM queue_history WHERE prompt_id = ?", ids).rowcount

    def clear_history(self) -> int:
        with transaction(self._conn):
            return self._conn.execute("DELETE FROM queue_history").rowcount

    # -- change signals ----------------------------------------------------------------------------------------

    def add_listener(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` after every queue change (put, claim, finish, delete, clear); returns an unsubscribe."""
        with self._signal_lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._signal_lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    def _changed(self, *, wake: bool = False) -> None:
        """Tell listeners (and, when an item became claimable, waiting `next` calls) after a committed change."""
        with self._signal_lock:
            listeners = list(self._listeners)
            waiters = list(self._waiters) if wake else []
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop has closed; its waiter is gone with it
                pass
        for callback in listeners:
            try:
                callback()
            except Exception:
                # The change is committed; a broken listener must not turn it into an error for the caller.
                logger.exception("queue listener %r failed", callback)

    @contextmanager
    def _write(self) -> Iterator[None]:
        """A write transaction that records the queue's size as it commits (for `known_remaining`)."""
        with self._conn.lock:  # re-entrant: held from the count through the commit, so counts land in commit order
            try:
                with transaction(self._conn):
                    yield
                    (count,) = self._conn.execute("SELECT COUNT(*) FROM queue_items").fetchone()
            except BaseException:
                self._remaining = None
                raise
            self._remaining = count

    # -- SQL helpers (called inside a transaction) ---------------------------------------------------------------

    def _items(self, state: str) -> list[QueueItem]:
        with transaction(self._conn, write=False):
            rows = self._conn.execute(
                f"SELECT {_ITEM_COLUMNS} FROM queue_items WHERE state = ? ORDER BY number, seq", (state,)
            ).fetchall()
        return [_item(row) for row in rows]

    def _refuse_duplicate(self, prompt_id: str) -> None:
        for table, where in (("queue_items", "in the queue"), ("queue_history", "in history")):
            if self._conn.execute(f"SELECT 1 FROM {table} WHERE prompt_id = ?", (prompt_id,)).fetchone():
                raise ValueError(
                    f"prompt_id {prompt_id!r} is already {where}; submit with a new prompt_id or none at all"
                )

    def _next_number(self) -> float:
        self._conn.execute("UPDATE queue_counter SET last_number = last_number + 1")
        (number,) = self._conn.execute("SELECT last_number FROM queue_counter").fetchone()
        return number

    def _front_number(self) -> float:
        (lowest,) = self._conn.execute("SELECT MIN(number) FROM queue_items WHERE state = 'pending'").fetchone()
        return self._next_number() if lowest is None else lowest - 1

    def _trim_history(self) -> None:
        self._conn.execute(
            "DELETE FROM queue_history WHERE seq <= "
            "(SELECT seq FROM queue_history ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (self.max_history,),
        )


async def _first_set(wake: asyncio.Event, stop: asyncio.Event | None) -> None:
    if stop is None:
        await wake.wait()
        return
    waits = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


def _dump_all(prompt_id: str, **fields: Any) -> list[str]:
    """Encode each field as JSON, in the order given, naming the field that cannot be stored."""
    encoded = []
    for name, value in fields.items():
        try:
            encoded.append(json.dumps(value, separators=(",", ":")))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"prompt {prompt_id!r}: {name} cannot be stored as JSON ({exc})") from exc
    return encoded


def _item(row: tuple[Any, ...]) -> QueueItem:
    number, prompt_id, prompt, extra_data, outputs_to_execute = row
    return QueueItem(number, prompt_id, json.loads(prompt), json.loads(extra_data), json.loads(outputs_to_execute))


def _history_entry(row: tuple[Any, ...]) -> dict[str, Any]:
    outputs, status, meta = row[5:]
    return {
        "prompt": _item(row[:5]).as_comfy(),
        "outputs": json.loads(outputs),
        "status": json.loads(status),
        "meta": json.loads(meta),
    }
