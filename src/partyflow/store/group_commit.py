"""Group commit: many small writes, one transaction and at most one fsync for all that arrive together.

Why: a server accepting prompts from many clients at once would otherwise pay one transaction and one fsync per
prompt, serialised on SQLite's single writer; and a write done on the event loop would stall every client while
the disk syncs. Here one writer thread owns the connection's writes. Callers hand it a *unit of work* (a function of
the connection) and wait for its result, synchronously (`call`) or from asyncio (`call_async`). Everything queued
while the previous batch was being written goes into the next batch: one ``BEGIN IMMEDIATE ... COMMIT``, each unit in
a savepoint of its own so a refused unit (say, a duplicate id) fails alone.

Durability, and why it is split in two:

* Every batch commits with ``synchronous=NORMAL`` in WAL mode: the commit is in the WAL file (the OS's page cache)
  when COMMIT returns, so a killed process (``kill -9``, a crash, an OOM kill) loses nothing committed: the next
  open replays the WAL. Only a power cut or an OS crash can lose commits that were never synced.
* Units submitted with ``durable=True`` (accepted prompts) are answered only after the WAL has been synced to disk
  (``fdatasync`` of the ``-wal`` file, which holds every frame committed so far). A second thread does that sync, so
  the writer keeps committing other batches meanwhile, and one sync answers every durable unit committed before it
  began: under load, many accepted prompts share one fsync. A checkpoint that moved frames into the database file
  first synced them there (SQLite syncs the WAL before and the database after each checkpoint), so syncing the
  current WAL afterwards is still enough.
* Other units (a claim, a result into history) do not wait for a sync: they survive ``kill -9`` at once and a power
  cut once the next sync or checkpoint has run. Their loss in a power cut is recoverable by design: the prompt is
  still durably queued and runs again.

When SQLite refuses WAL mode (some network file systems), every commit runs with ``synchronous=FULL`` instead and
durable units are answered at commit. Checkpoints run on the sync thread (on a connection of its own) once the WAL
has been written to for `checkpoint_interval` seconds, so the writer never stalls on copying pages into the database
file (SQLite would checkpoint on the committing thread every 1,000 pages).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from partyflow.store.sqlite import BUSY_TIMEOUT_MS, StoreConnection, StoreError, database_file, open_database

__all__ = ["GroupCommit"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

CHECKPOINT_INTERVAL_S = 0.5
"""How often (at most) the sync thread checkpoints while writes keep coming."""


@dataclass(eq=False)
class _Unit(Generic[T]):
    work: Callable[[StoreConnection], T]
    durable: bool
    loop: asyncio.AbstractEventLoop | None = None
    waiter: asyncio.Future[T] | concurrent.futures.Future[T] | None = None
    abandon: Callable[[T], None] | None = None  # called with the value when an asyncio waiter went away
    value: Any = None
    error: BaseException | None = None


class GroupCommit:
    """Applies units of work to `conn` in batched transactions on a thread of its own; see the module docstring.

    `before_commit(conn, values)` runs inside every batch's transaction after its units, with the values the batch's
    successful units returned (for upkeep such as pruning); `after_commit(values)` runs after every successful
    commit, still holding the connection's lock (so two never overlap: for bookkeeping such as counters), and
    `notify(values)` right after the lock is released (for change notifications, which may call back into the
    store). None of them may raise; they run on the writer thread, or on the caller's for an inline unit.
    """

    def __init__(self, conn: StoreConnection, *, name: str,
                 before_commit: Callable[[StoreConnection, list[Any]], None] | None = None,
                 after_commit: Callable[[list[Any]], None] | None = None,
                 notify: Callable[[list[Any]], None] | None = None,
                 checkpoint_interval: float = CHECKPOINT_INTERVAL_S) -> None:
        self._conn = conn
        self._name = name
        self._before_commit = before_commit
        self._after_commit = after_commit
        self._notify = notify
        self._checkpoint_interval = checkpoint_interval
        self._last_checkpoint = time.monotonic()
        path = database_file(conn)
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        self._wal_path = Path(f"{path}-wal") if mode.lower() == "wal" and path else None
        if self._wal_path is None:
            conn.execute("PRAGMA synchronous=FULL")  # no WAL to sync separately: make every commit durable
        else:
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the sync thread checkpoints, off the writer's path
        self._checkpointer: StoreConnection | None = None
        self._db_path = Path(path) if path else None
        self._lock = threading.Lock()
        self._wake_writer = threading.Condition(self._lock)
        self._wake_syncer = threading.Condition(self._lock)
        self._pending: list[_Unit[Any]] = []
        self._unsynced: list[_Unit[Any]] = []
        self._committed_since_check = False
        self._closing = False
        self._writer_finished = False
        self._writer_busy = False  # the writer has taken a batch and not finished it
        self._inline_busy = False  # a caller is applying a unit inline
        self._writer = threading.Thread(target=self._write_loop, name=f"{name}-writer", daemon=True)
        self._syncer = threading.Thread(target=self._sync_loop, name=f"{name}-sync", daemon=True)
        self._writer.start()
        self._syncer.start()

    # -- submitting ---------------------------------------------------------------------------------------------

    def call(self, work: Callable[[StoreConnection], T], *, durable: bool = False) -> T:
        """Run `work` in the next batch and return its value (or raise its error), blocking this thread."""
        unit: _Unit[T] = _Unit(work, durable)
        if threading.current_thread() is self._writer:  # e.g. a change listener writing again: no waiting on itself
            self._apply([unit])
            if unit.durable and unit.error is None:
                self._sync_now([unit])
            return _outcome(unit)
        unit.waiter = concurrent.futures.Future()
        self._enqueue(unit)
        return unit.waiter.result()

    async def call_async(self, work: Callable[[StoreConnection], T], *, durable: bool = False,
                         abandon: Callable[[T], None] | None = None, inline: bool = False) -> T:
        """`call` for the event loop: the loop keeps running while the batch is written (and synced).

        If the awaiting task is cancelled, the unit still runs (it may already be committed); `abandon` then gets
        its value, on the loop, so the caller can undo what nobody will use (say, a claimed item).

        `inline=True` is for short units on a latency-critical path (a serial worker's claim): when nothing else is
        waiting to be written and the database's write lock is free this instant, the unit is committed right here
        (a commit without a sync takes tens of microseconds), saving two thread hops, each of which can cost a
        scheduler time slice on a busy machine. Otherwise it joins the next batch as usual; order is kept either
        way, since it runs inline only when every unit submitted before it has been written.
        """
        loop = asyncio.get_running_loop()
        unit: _Unit[T] = _Unit(work, durable, loop, loop.create_future(), abandon)
        if inline and self._try_inline(unit):
            if unit.durable and unit.error is None and self._wal_path is not None:
                with self._lock:
                    self._unsynced.append(unit)
                    self._wake_syncer.notify()
                return await unit.waiter  # type: ignore[misc]
            return _outcome(unit)
        self._enqueue(unit)
        return await unit.waiter  # type: ignore[misc]

    def _try_inline(self, unit: _Unit[Any]) -> bool:
        """Apply `unit` on this thread if that needs no waiting at all; False (nothing done) otherwise."""
        with self._lock:
            if self._pending or self._writer_busy or self._inline_busy or self._closing:
                return False  # something submitted earlier is still to be written: keep the order
            self._inline_busy = True
        conn = self._conn
        try:
            if not conn.lock.acquire(blocking=False):
                return False
            try:
                conn.execute("PRAGMA busy_timeout=0")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError:  # another connection holds the write lock: do not wait here
                    return False
                finally:
                    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                committed = self._run_units(conn, [unit])
            finally:
                conn.lock.release()
            if committed:
                self._notify_changes([unit])
            return True
        finally:
            with self._lock:
                self._inline_busy = False

    def submit(self, work: Callable[[StoreConnection], Any]) -> None:
        """Run `work` in the next batch without waiting; a failure is logged."""
        self._enqueue(_Unit(work, False))

    def close(self) -> None:
        """Write and sync everything submitted so far, then stop both threads."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._wake_writer.notify()
        if threading.current_thread() in (self._writer, self._syncer):
            raise StoreError(f"the {self._name} store cannot be closed from its own writer or sync thread")
        self._writer.join()
        self._syncer.join()
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None

    def _enqueue(self, unit: _Unit[Any]) -> None:
        with self._lock:
            if self._closing:
                raise StoreError(f"the {self._name} store is closed")
            self._pending.append(unit)
            if len(self._pending) == 1:
                self._wake_writer.notify()

    # -- the writer thread --------------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closing:
                    self._wake_writer.wait()
                batch, self._pending = self._pending, []
                if not batch:  # closing, and nothing left
                    self._writer_finished = True
                    self._wake_syncer.notify()
                    return
                self._writer_busy = True
            try:
                self._apply(batch)
            finally:
                with self._lock:
                    self._writer_busy = False
            to_sync: list[_Unit[Any]] = []
            answer_now: list[_Unit[Any]] = []
            for unit in batch:
                (to_sync if unit.durable and unit.error is None and self._wal_path is not None
                 else answer_now).append(unit)
            with self._lock:  # durable units are answered by the sync thread once the WAL holding them is on disk
                self._unsynced.extend(to_sync)
                if to_sync or not self._committed_since_check:  # else it is awake, or already timing a checkpoint
                    self._wake_syncer.notify()
                self._committed_since_check = True
            _settle(answer_now)

    def _apply(self, batch: list[_Unit[Any]]) -> None:
        """One transaction for the whole batch; each unit in a savepoint so that it fails alone."""
        conn = self._conn
        with conn.lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except Exception as exc:
                self._failed(batch, exc)
                return
            committed = self._run_units(conn, batch)
        if committed:
            self._notify_changes(batch)

    def _notify_changes(self, batch: list[_Unit[Any]]) -> None:
        if self._notify is not None:
            try:
                self._notify([unit.value for unit in batch if unit.error is None])
            except Exception:
                logger.exception("%s: change notification failed", self._name)

    def _run_units(self, conn: StoreConnection, batch: list[_Unit[Any]]) -> bool:
        """Inside the transaction BEGIN opened (holding the connection's lock): run, commit, then the hook.
        Returns whether the batch was committed."""
        try:
            try:
                for unit in batch:
                    conn.execute("SAVEPOINT partyflow_unit")
                    try:
                        unit.value = unit.work(conn)
                    except Exception as exc:
                        conn.execute("ROLLBACK TO partyflow_unit")
                        unit.error = exc
                    conn.execute("RELEASE partyflow_unit")
                if self._before_commit is not None:
                    self._before_commit(conn, [unit.value for unit in batch if unit.error is None])
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        except Exception as exc:  # the upkeep or COMMIT failed: nothing of the batch was written
            self._failed(batch, exc)
            return False
        if self._after_commit is not None:  # still under the connection's lock: hooks never run concurrently
            try:
                self._after_commit([unit.value for unit in batch if unit.error is None])
            except Exception:
                logger.exception("%s: after-commit hook failed", self._name)
        return True

    def _failed(self, batch: list[_Unit[Any]], exc: Exception) -> None:
        logger.error("%s: a batch of %d write(s) failed: %s", self._name, len(batch), exc)
        for unit in batch:
            unit.error = exc if isinstance(exc, StoreError) else StoreError(
                f"the {self._name} store could not write: {exc}", path=database_file(self._conn))

    # -- the sync thread ----------------------------------------------------------------------------------------

    def _sync_loop(self) -> None:
        while True:
            with self._lock:
                while not self._unsynced and not self._writer_finished:
                    if not self._committed_since_check:
                        self._wake_syncer.wait()
                        continue
                    due = self._last_checkpoint + self._checkpoint_interval - time.monotonic()
                    if due <= 0:
                        break
                    self._wake_syncer.wait(due)
                waiting, self._unsynced = self._unsynced, []
                stop = self._writer_finished  # the writer's last batch is in `waiting` by now
                checkpoint = (self._committed_since_check and not stop
                              and time.monotonic() - self._last_checkpoint >= self._checkpoint_interval)
                if checkpoint:
                    self._committed_since_check = False
            if waiting:
                self._sync_now(waiting)
                _settle(waiting)
            if checkpoint:
                self._checkpoint()
            if stop:
                return

    def _sync_now(self, units: Iterable[_Unit[Any]]) -> None:
        """Sync the WAL; every unit committed before this call is then on disk. A failure fails those units: what
        was committed may still be there after a crash, but it was never promised."""
        if self._wal_path is None:
            return
        try:
            fd = os.open(self._wal_path, os.O_RDONLY if os.name == "posix" else os.O_RDWR)
        except FileNotFoundError:
            return  # checkpointed and removed: the frames are in the database file, synced by that checkpoint
        except OSError as exc:
            _fail(units, StoreError(f"cannot open the write-ahead log to sync it: {exc}", path=self._wal_path))
            return
        try:
            (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(fd)
        except OSError as exc:
            _fail(units, StoreError(f"cannot sync the write-ahead log: {exc}", path=self._wal_path,
                                    hint="check the disk; the write may not survive a power cut"))
        finally:
            os.close(fd)

    def _checkpoint(self) -> None:
        self._last_checkpoint = time.monotonic()
        if self._wal_path is None or self._db_path is None:
            return
        try:
            if self._checkpointer is None:
                self._checkpointer = open_database(self._db_path, synchronous="NORMAL")
            # PASSIVE: copies what no reader still needs, never waits on the writer
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except (OSError, sqlite3.Error, StoreError) as exc:
            logger.warning("%s: checkpoint failed (will retry): %s", self._name, exc)


def _fail(units: Iterable[_Unit[Any]], error: BaseException) -> None:
    for unit in units:
        if unit.error is None:
            unit.error = error


def _outcome(unit: _Unit[T]) -> T:
    if unit.error is not None:
        raise unit.error
    return unit.value


def _settle(units: list[_Unit[Any]]) -> None:
    """Hand each unit's outcome to its waiter: threads directly, each event loop in one callback per batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Unit[Any]]] = {}
    for unit in units:
        if unit.loop is not None:
            by_loop.setdefault(unit.loop, []).append(unit)
        elif isinstance(unit.waiter, concurrent.futures.Future):
            if unit.error is not None:
                unit.waiter.set_exception(unit.error)
            else:
                unit.waiter.set_result(unit.value)
        elif unit.error is not None:
            logger.error("a queued write failed: %s", unit.error)
    for loop, group in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_on_loop, group)
        except RuntimeError:  # that loop has closed; nobody is waiting any more
            _settle_on_loop_closed(group)


def _settle_on_loop(units: list[_Unit[Any]]) -> None:
    for unit in units:
        waiter = unit.waiter
        assert isinstance(waiter, asyncio.Future)
        if waiter.cancelled():
            if unit.error is None and unit.abandon is not None:
                unit.abandon(unit.value)
        elif unit.error is not None:
            waiter.set_exception(unit.error)
        else:
            waiter.set_result(unit.value)


def _settle_on_loop_closed(units: list[_Unit[Any]]) -> None:
    for unit in units:
        if unit.error is None and unit.abandon is not None:
            try:
                unit.abandon(unit.value)
            except Exception:
                logger.exception("undoing an abandoned write failed")
