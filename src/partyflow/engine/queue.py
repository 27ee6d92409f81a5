"""The persistent prompt queue and its history, in ComfyUI's shapes.

Every accepted prompt is a row in SQLite before `put` returns, so a crash loses nothing: a prompt that was running
when the process died goes back to pending (in its original place) the next time the queue is opened, and `finish`
moves a prompt into history in the same transaction that removes it from the queue.

Writes go through a group commit (`partyflow.store.group_commit`): one writer thread applies everything submitted
in the same instant as one transaction, so a server accepting prompts from many clients pays one commit (and one
fsync) for all of them, and the event loop never waits on the disk. What survives what:

* an accepted prompt (`put`) is answered only once the write-ahead log holding it is synced to disk: it survives
  ``kill -9`` and a power cut;
* a claim, a finished prompt's move into history, deletions and clears are committed without waiting for a sync:
  they survive ``kill -9`` at once (the log is in the OS's cache) and a power cut once the next sync has run. If the
  power goes first, a finished prompt is back in the queue and runs again: at least once, never lost.

Reads (`pending`, `history`, ...) use a connection of their own, so they never wait behind a write. One process
consumes a given queue file: re-opening recovers *all* running items, the wake-up that `next` waits on is
in-process, and the counts behind `known_remaining` and history pruning are kept by this process. All methods are
safe to call from any thread; listeners run on the writer thread after each committed batch (a server hops to its
event loop with ``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from partyflow.store.group_commit import GroupCommit
from partyflow.store.sqlite import StoreConnection, migrate, open_database, transaction

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

MAX_QUEUE_NUMBER = 2**53 - 1  # the largest integer a REAL column (and JavaScript) holds exactly
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

    number: int
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
    """Pending and running prompts plus a bounded history, all persisted in one SQLite file.

    History keeps the newest `max_history` entries; older ones are pruned in batches (when the history has grown
    by 1% of `max_history` past the limit), so pruning costs a little per prompt whatever the size of the history.
    """

    def __init__(self, db_path: Path, *, max_history: int = 10_000) -> None:
        if max_history < 0:
            raise ValueError(f"max_history must be zero or more, not {max_history}")
        self.max_history = max_history
        self._prune_slack = max_history // 100
        self._listeners: list[Callable[[], None]] = []
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._signal_lock = threading.Lock()
        self._conn = open_database(Path(db_path))
        self._reader: StoreConnection | None = None
        try:
            migrate(self._conn, "queue", _SCHEMA)
            self._recover()
            # Kept by the writer thread from here on (one process consumes a queue file).
            self._remaining: int = self._count("queue_items")
            self._history_count: int = self._count("queue_history")
            self._recounted: int | None = None
            # ids of pending and running prompts: a poll for one of them is answered without a read
            self._queued: set[str] = {row[0] for row in self._conn.execute("SELECT prompt_id FROM queue_items")}
            self._reader = open_database(Path(db_path))
            self._group = GroupCommit(self._conn, name="queue", before_commit=self._prune,
                                      after_commit=self._committed, notify=self._notify)
        except BaseException:
            if self._reader is not None:
                self._reader.close()
            self._conn.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Finish the writes already submitted, then close; the queue cannot be used afterwards."""
        self._group.close()
        assert self._reader is not None
        with self._reader.lock:
            self._reader.close()
        with self._conn.lock:
            self._conn.close()

    def __enter__(self) -> PromptQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _recover(self) -> None:
        """Return items a crashed process left running to pending (their numbers keep their original places), and
        apply a lowered `max_history` at once. Runs before the writer thread exists."""
        with transaction(self._conn):
            recovered = self._conn.execute("UPDATE queue_items SET state = 'pending' WHERE state = 'running'")
            self._conn.execute(
                "DELETE FROM queue_history WHERE seq <= "
                "(SELECT seq FROM queue_history ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (self.max_history,),
            )
        if recovered.rowcount:
            logger.warning("requeued %d prompt(s) left running by an earlier process", recovered.rowcount)

    def _count(self, table: str) -> int:
        with transaction(self._conn, write=False):
            (count,) = self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        return count

    # -- the queue ---------------------------------------------------------------------------------------------

    def put(
        self,
        prompt: dict[str, Any],
        *,
        prompt_id: str | None = None,
        extra_data: dict[str, Any] | None = None,
        outputs_to_execute: list[str] | None = None,
        front: bool = False,
        number: int | None = None,
    ) -> QueueItem:
        """Accept a prompt; it is durable (synced to disk) when this returns. ``front=True`` puts it before every
        pending prompt; an explicit `number` (ComfyUI's POST /prompt field) places it by that number instead.

        Raises ValueError when `prompt_id` is already queued or in history (history is keyed by prompt id), and
        TypeError when a part cannot be stored as JSON (before anything is written).
        """
        work, item = self._put_work(prompt, prompt_id, extra_data, outputs_to_execute, front, number)
        return item(self._group.call(work, durable=True))

    async def put_async(
        self,
        prompt: dict[str, Any],
        *,
        prompt_id: str | None = None,
        extra_data: dict[str, Any] | None = None,
        outputs_to_execute: list[str] | None = None,
        front: bool = False,
        number: int | None = None,
    ) -> QueueItem:
        """`put` for the event loop: prompts put in the same instant share one transaction and one sync."""
        work, item = self._put_work(prompt, prompt_id, extra_data, outputs_to_execute, front, number)
        return item(await self._group.call_async(work, durable=True))

    def _put_work(self, prompt: dict[str, Any], prompt_id: str | None, extra_data: dict[str, Any] | None,
                  outputs_to_execute: list[str] | None, front: bool, number: int | None
                  ) -> tuple[Callable[[StoreConnection], _Change], Callable[[_Change], QueueItem]]:
        if number is not None:
            checked = queue_number(number)
            if checked is None:
                raise ValueError(f"number must be an integer between -{MAX_QUEUE_NUMBER} and {MAX_QUEUE_NUMBER}")
            number = checked
        prompt_id = prompt_id or str(uuid.uuid4())
        extra = {} if extra_data is None else extra_data
        targets = [] if outputs_to_execute is None else list(outputs_to_execute)
        encoded = _dump_all(prompt_id, prompt=prompt, extra_data=extra, outputs_to_execute=targets)

        def work(conn: StoreConnection) -> _Change:
            _refuse_duplicate(conn, prompt_id)
            placed = number
            if placed is None:
                placed = _front_number(conn) if front else _next_number(conn)
            conn.execute(f"INSERT INTO queue_items ({_ITEM_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                         (placed, prompt_id, *encoded))
            return _Change(placed, remaining=1, wake=True, added=prompt_id)

        return work, lambda change: QueueItem(change.value, prompt_id, prompt, extra, targets)

    def claim(self) -> QueueItem | None:
        """Mark the first pending item running and return it, or None when nothing is pending."""
        return self._group.call(_claim).value

    async def next(self, stop: asyncio.Event | None = None) -> QueueItem | None:
        """Claim the next item, waiting for a `put` when the queue is empty; None once `stop` is set.

        The claim is written by the writer thread while the loop runs on; if this coroutine is cancelled meanwhile,
        an item the claim took goes back to pending, so nothing is left running that nobody executes.
        """
        loop = asyncio.get_running_loop()
        while stop is None or not stop.is_set():
            waiter = (loop, asyncio.Event())
            # Register before claiming, so a put landing between the claim and the wait is not missed.
            with self._signal_lock:
                self._waiters.add(waiter)
            try:
                item = await self._claim_async()
                if item is not None:
                    return item
                await _first_set(waiter[1], stop)
            finally:
                with self._signal_lock:
                    self._waiters.discard(waiter)
        return None

    async def _claim_async(self) -> QueueItem | None:
        change = await self._group.call_async(_claim, abandon=self._abandoned, inline=True)
        return change.value

    def _abandoned(self, change: _Change) -> None:
        """A claim whose waiter went away: put the item back where it was."""
        if change.value is not None:
            self.unclaim(change.value)

    def unclaim(self, item: QueueItem) -> None:
        """Put a claimed item that will not run now back to pending, in its old place (it runs next). Returns at
        once; the change is written with the next batch."""
        prompt_id = item.prompt_id

        def work(conn: StoreConnection) -> _Change:
            conn.execute("UPDATE queue_items SET state = 'pending' WHERE prompt_id = ? AND state = 'running'",
                         (prompt_id,))
            return _Change(wake=True)

        self._group.submit(work)

    def finish(
        self, item: QueueItem, *, outputs: dict[str, Any], status: dict[str, Any], meta: dict[str, Any] | None = None
    ) -> None:
        """Move a running item into history, in one transaction; history past `max_history` is pruned in batches.

        `status` is ComfyUI's ``{"status_str", "completed", "messages"}``; `outputs` maps node id to its UI dict.
        Raises ValueError when the item is not running (never claimed, or already finished).
        """
        self._group.call(self._finish_work(item, outputs, status, meta))

    async def finish_async(
        self, item: QueueItem, *, outputs: dict[str, Any], status: dict[str, Any], meta: dict[str, Any] | None = None,
        claim_next: bool = False,
    ) -> QueueItem | None:
        """`finish` for the event loop. With `claim_next`, the same transaction also claims the next pending item
        and returns it (None when nothing is pending): a serial worker saves a round trip per prompt."""
        finish = self._finish_work(item, outputs, status, meta)
        if not claim_next:
            await self._group.call_async(finish, inline=True)
            return None

        def work(conn: StoreConnection) -> _Change:
            done = finish(conn)
            claimed = _claim(conn)
            return _Change(claimed.value, remaining=done.remaining, history=done.history, removed=done.removed)

        change = await self._group.call_async(work, abandon=self._abandoned, inline=True)
        return change.value

    def _finish_work(self, item: QueueItem, outputs: dict[str, Any], status: dict[str, Any],
                     meta: dict[str, Any] | None) -> Callable[[StoreConnection], _Change]:
        encoded = _dump_all(
            item.prompt_id,
            prompt=item.prompt,
            extra_data=item.extra_data,
            outputs_to_execute=item.outputs_to_execute,
            outputs=outputs,
            status=status,
            meta=meta or {},
        )
        finished_at = time.time()

        def work(conn: StoreConnection) -> _Change:
            removed = conn.execute("DELETE FROM queue_items WHERE prompt_id = ? AND state = 'running'",
                                   (item.prompt_id,))
            if removed.rowcount == 0:
                raise ValueError(f"prompt {item.prompt_id!r} is not running, so it cannot be finished")
            conn.execute(
                f"INSERT INTO queue_history ({_ITEM_COLUMNS}, outputs, status, meta, finished_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item.number, item.prompt_id, *encoded, finished_at),
            )
            return _Change(remaining=-1, history=1, removed=(item.prompt_id,))

        return work

    def pending(self) -> list[QueueItem]:
        """Pending items in the order they will run."""
        return self._items("pending")

    def running(self) -> list[QueueItem]:
        return self._items("running")

    def remaining(self) -> int:
        """Pending plus running items: ComfyUI's ``queue_remaining``, read from the database."""
        with self._read() as reader:
            (count,) = reader.execute("SELECT COUNT(*) FROM queue_items").fetchone()
        return count

    def known_remaining(self) -> int:
        """`remaining()` as this process's last committed change left it, without touching the database.

        For the server's status broadcasts and `GET /prompt`: they run on the event loop and follow this process's
        own changes (the count is kept by the writer thread as each batch commits).
        """
        return self._remaining

    def delete(self, prompt_ids: Iterable[str]) -> int:
        """Remove these prompts if they are still pending; returns how many were removed. Running ones stay."""
        ids = [(prompt_id,) for prompt_id in prompt_ids]

        def work(conn: StoreConnection) -> _Change:
            removed = tuple(prompt_id for (prompt_id,) in ids if conn.execute(
                "DELETE FROM queue_items WHERE prompt_id = ? AND state = 'pending'", (prompt_id,)).rowcount)
            return _Change(len(removed), remaining=-len(removed), changed=bool(removed), removed=removed)

        return self._group.call(work).value

    def clear(self) -> int:
        """Remove every pending prompt; returns how many. Running ones stay."""
        def work(conn: StoreConnection) -> _Change:
            removed = tuple(prompt_id for (prompt_id,) in conn.execute(
                "DELETE FROM queue_items WHERE state = 'pending' RETURNING prompt_id").fetchall())
            return _Change(len(removed), remaining=-len(removed), changed=bool(removed), removed=removed)

        return self._group.call(work).value

    # -- history -----------------------------------------------------------------------------------------------

    def history(
        self, prompt_id: str | None = None, *, max_items: int | None = None, offset: int = 0
    ) -> dict[str, dict[str, Any]]:
        """Finished prompts in ComfyUI's shape, oldest first (newest last), or only `prompt_id` ({} if unknown).

        `offset` skips the oldest entries; a negative offset with `max_items` gives the newest `max_items`, as
        ComfyUI's ``GET /history?max_items=n`` does. Reads by key (the newest entries through the primary key's
        order), never by counting the whole history.
        """
        columns = f"{_ITEM_COLUMNS}, outputs, status, meta"
        with self._read() as reader:
            if prompt_id is not None:
                rows = reader.execute(f"SELECT {columns} FROM queue_history WHERE prompt_id = ?",
                                      (prompt_id,)).fetchall()
            elif offset < 0 and max_items is not None:
                rows = reader.execute(f"SELECT {columns} FROM queue_history ORDER BY seq DESC LIMIT ?",
                                      (max_items,)).fetchall()[::-1]
            else:
                rows = reader.execute(
                    f"SELECT {columns} FROM queue_history ORDER BY seq LIMIT ? OFFSET ?",
                    (-1 if max_items is None else max_items, max(offset, 0)),
                ).fetchall()
        return {row[1]: _history_entry(row) for row in rows}

    def history_json(self, prompt_id: str) -> str:
        """``history(prompt_id)`` as JSON text, assembled from the stored JSON without decoding it: what
        ``GET /history/{prompt_id}`` answers, the request clients poll while they wait: a prompt still queued is
        answered from memory, a finished one by one read by key (one statement, its own read transaction)."""
        if prompt_id in self._queued:
            return "{}"
        assert self._reader is not None
        with self._reader.lock:
            row = self._reader.execute(
                "SELECT number, prompt, extra_data, outputs_to_execute, outputs, status, meta FROM queue_history"
                " WHERE prompt_id = ?", (prompt_id,)).fetchone()
        if row is None:
            return "{}"
        number, prompt, extra_data, outputs_to_execute, outputs, status, meta = row
        key = json.dumps(prompt_id)
        return (f'{{{key}: {{"prompt": [{json.dumps(_stored_number(number))}, {key}, {prompt}, {extra_data}, {outputs_to_execute}],'
                f' "outputs": {outputs}, "status": {status}, "meta": {meta}}}}}')

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
        status = json.dumps({"status_str": "error", "completed": False,
                             "messages": [["execution_interrupted", data]]}, separators=(",", ":"))

        def work(conn: StoreConnection) -> _Change:
            row = conn.execute(f"SELECT {_ITEM_COLUMNS} FROM queue_items WHERE prompt_id = ? AND state = 'pending'",
                               (prompt_id,)).fetchone()
            if row is None:
                return _Change(False, changed=False)
            conn.execute("DELETE FROM queue_items WHERE prompt_id = ? AND state = 'pending'", (prompt_id,))
            conn.execute(f"INSERT INTO queue_history ({_ITEM_COLUMNS}, outputs, status, meta, finished_at)"
                         " VALUES (?, ?, ?, ?, ?, '{}', ?, '{}', ?)", (*row, status, now))
            return _Change(True, remaining=-1, history=1, removed=(prompt_id,))

        return bool(self._group.call(work).value)

    def delete_history(self, prompt_ids: Iterable[str]) -> int:
        ids = [(prompt_id,) for prompt_id in prompt_ids]

        def work(conn: StoreConnection) -> _Change:
            removed = conn.executemany("DELETE FROM queue_history WHERE prompt_id = ?", ids).rowcount
            return _Change(removed, history=-removed, changed=False)

        return self._group.call(work).value

    def clear_history(self) -> int:
        def work(conn: StoreConnection) -> _Change:
            removed = conn.execute("DELETE FROM queue_history").rowcount
            return _Change(removed, history=-removed, changed=False)

        return self._group.call(work).value

    # -- change signals ----------------------------------------------------------------------------------------

    def add_listener(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` after every committed batch that changed the queue (put, claim, finish, delete, clear);
        returns an unsubscribe. Changes submitted together are heard once."""
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

    # -- the writer thread's hooks -----------------------------------------------------------------------------

    def _prune(self, conn: StoreConnection, changes: list[_Change]) -> None:
        """Inside each batch: once history has grown `_prune_slack` past `max_history`, delete the oldest entries
        down to `max_history` in one statement (counting once per prune, not once per prompt)."""
        self._recounted = None
        projected = self._history_count + sum(change.history for change in changes)
        if projected <= self.max_history + self._prune_slack:
            return
        (count,) = conn.execute("SELECT COUNT(*) FROM queue_history").fetchone()
        excess = count - self.max_history
        if excess > 0:
            conn.execute("DELETE FROM queue_history WHERE seq <= "
                         "(SELECT seq FROM queue_history ORDER BY seq LIMIT 1 OFFSET ?)", (excess - 1,))
        self._recounted = min(count, self.max_history)

    def _committed(self, changes: list[_Change]) -> None:
        for change in changes:
            if change.added is not None:
                self._queued.add(change.added)
            self._queued.difference_update(change.removed)
        self._remaining += sum(change.remaining for change in changes)
        if self._recounted is not None:
            self._history_count = self._recounted
        else:
            self._history_count += sum(change.history for change in changes)

    def _notify(self, changes: list[_Change]) -> None:
        if any(change.changed for change in changes):
            self._changed(wake=any(change.wake for change in changes))

    # -- reads -------------------------------------------------------------------------------------------------

    def _read(self) -> Any:
        assert self._reader is not None
        return transaction(self._reader, write=False)

    def _items(self, state: str) -> list[QueueItem]:
        with self._read() as reader:
            rows = reader.execute(
                f"SELECT {_ITEM_COLUMNS} FROM queue_items WHERE state = ? ORDER BY number, seq", (state,)
            ).fetchall()
        return [_item(row) for row in rows]


@dataclass(frozen=True)
class _Change:
    """What one unit of work did, for the writer thread's bookkeeping after the commit."""

    value: Any = None
    remaining: int = 0  # change in pending + running items
    history: int = 0  # change in history entries
    wake: bool = False  # an item became claimable
    changed: bool = True  # listeners hear of it
    added: str | None = None  # a prompt id that joined the queue
    removed: tuple[str, ...] = ()  # prompt ids that left it


# -- SQL units (run inside the writer's transaction) -------------------------------------------------------------


def _claim(conn: StoreConnection) -> _Change:
    row = conn.execute(
        f"SELECT seq, {_ITEM_COLUMNS} FROM queue_items WHERE state = 'pending' ORDER BY number, seq LIMIT 1"
    ).fetchone()
    if row is None:
        return _Change(None, changed=False)
    conn.execute("UPDATE queue_items SET state = 'running' WHERE seq = ?", (row[0],))
    return _Change(_item(row[1:]))


def _refuse_duplicate(conn: StoreConnection, prompt_id: str) -> None:
    for table, where in (("queue_items", "in the queue"), ("queue_history", "in history")):
        if conn.execute(f"SELECT 1 FROM {table} WHERE prompt_id = ?", (prompt_id,)).fetchone():
            raise ValueError(
                f"prompt_id {prompt_id!r} is already {where}; submit with a new prompt_id or none at all"
            )


def _next_number(conn: StoreConnection) -> int:
    conn.execute("UPDATE queue_counter SET last_number = last_number + 1")
    (number,) = conn.execute("SELECT last_number FROM queue_counter").fetchone()
    return _stored_number(number)


def _front_number(conn: StoreConnection) -> int:
    (lowest,) = conn.execute("SELECT MIN(number) FROM queue_items WHERE state = 'pending'").fetchone()
    return _next_number(conn) if lowest is None else _stored_number(lowest) - 1


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


def queue_number(value: Any) -> int | None:
    """`value` as a queue number, or None when it is not one: an integer (or a float with no fraction, as
    JavaScript clients send them) within +-MAX_QUEUE_NUMBER. ComfyUI's queue numbers are integers; the bound
    keeps them exact in the REAL column and keeps 400-digit integers from overflowing on the way in."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    if not isinstance(value, int) or abs(value) > MAX_QUEUE_NUMBER:
        return None
    return value


def _stored_number(value: float | int) -> int:
    """Numbers are stored as REAL (older homes may hold fractions): handed out as the integers ComfyUI uses."""
    return int(value)


def _item(row: tuple[Any, ...]) -> QueueItem:
    number, prompt_id, prompt, extra_data, outputs_to_execute = row
    return QueueItem(_stored_number(number), prompt_id, json.loads(prompt), json.loads(extra_data),
                     json.loads(outputs_to_execute))


def _history_entry(row: tuple[Any, ...]) -> dict[str, Any]:
    outputs, status, meta = row[5:]
    return {
        "prompt": _item(row[:5]).as_comfy(),
        "outputs": json.loads(outputs),
        "status": json.loads(status),
        "meta": json.loads(meta),
    }
