"""Group commit: units submitted together share one transaction; a refused unit fails alone; durable units are
answered only after the write-ahead log was synced; inline units keep the order of everything submitted earlier;
history is pruned in batches, not per prompt."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from partyflow.engine.queue import PromptQueue
from partyflow.store.group_commit import GroupCommit
from partyflow.store.sqlite import StoreConnection, open_database

SUCCESS = {"status_str": "success", "completed": True, "messages": []}


@pytest.fixture
def store(tmp_path: Path):
    conn = open_database(tmp_path / "db.sqlite")
    conn.execute("CREATE TABLE t (name TEXT PRIMARY KEY)")
    batches: list[list[Any]] = []
    group = GroupCommit(conn, name="test", after_commit=batches.append)
    yield conn, group, batches
    group.close()
    conn.close()


def insert(name: str):
    def work(conn: StoreConnection) -> str:
        conn.execute("INSERT INTO t (name) VALUES (?)", (name,))
        return name
    return work


def names(conn: StoreConnection) -> list[str]:
    with conn.lock:
        return [row[0] for row in conn.execute("SELECT name FROM t ORDER BY name")]


def test_units_submitted_together_share_one_transaction_and_a_refused_one_fails_alone(store):
    conn, group, batches = store
    group.call(insert("a"))
    entered, blocker = threading.Event(), threading.Event()

    def hold(conn: StoreConnection) -> None:
        entered.set()
        blocker.wait(10)  # keeps the writer busy while the next units pile up

    async def scenario() -> list[Any]:
        held = asyncio.ensure_future(group.call_async(hold))
        await asyncio.to_thread(entered.wait, 10)
        together = [asyncio.ensure_future(group.call_async(insert(name), durable=True)) for name in ("b", "a", "c")]
        await asyncio.sleep(0)  # each task runs up to its wait: all three are queued now
        blocker.set()
        await held
        return await asyncio.gather(*together, return_exceptions=True)

    results = asyncio.run(scenario())
    assert results[0] == "b" and results[2] == "c"
    assert isinstance(results[1], sqlite3.IntegrityError)  # the duplicate, rolled back to its own savepoint
    assert names(conn) == ["a", "b", "c"]
    assert batches[-1] == ["b", "c"]  # one commit for the three that arrived together (two succeeded)


def test_durable_units_are_answered_after_the_log_is_synced(store, monkeypatch):
    conn, group, _ = store
    events: list[str] = []
    real_sync = GroupCommit._sync_now

    def sync(self: GroupCommit, units: Any) -> None:
        events.append("sync")
        real_sync(self, units)

    monkeypatch.setattr(GroupCommit, "_sync_now", sync)
    group.call(insert("x"), durable=True)
    events.append("answered")
    group.call(insert("y"))  # not durable: answered at commit, no sync of its own needed
    assert events == ["sync", "answered"]
    assert names(conn) == ["x", "y"]


def test_an_inline_unit_waits_its_turn_behind_units_submitted_before_it(store):
    conn, group, _ = store
    entered, blocker = threading.Event(), threading.Event()
    order: list[str] = []

    def slow(conn: StoreConnection) -> None:
        entered.set()
        blocker.wait(10)
        order.append("queued first")

    def quick(conn: StoreConnection) -> None:
        order.append("inline")

    async def scenario() -> None:
        first = asyncio.ensure_future(group.call_async(slow))
        await asyncio.to_thread(entered.wait, 10)
        second = asyncio.ensure_future(group.call_async(quick, inline=True))
        await asyncio.sleep(0)  # it tried to run inline, found the writer busy, and queued itself
        assert order == []
        blocker.set()
        await asyncio.gather(first, second)
        await group.call_async(quick, inline=True)  # nothing waiting now: runs right here

    asyncio.run(scenario())
    assert order == ["queued first", "inline", "inline"]


def test_close_writes_what_was_submitted(tmp_path: Path):
    conn = open_database(tmp_path / "db.sqlite")
    conn.execute("CREATE TABLE t (name TEXT PRIMARY KEY)")
    group = GroupCommit(conn, name="test")
    for name in "abc":
        group.submit(insert(name))
    group.close()
    assert names(conn) == ["a", "b", "c"]
    with pytest.raises(Exception, match="closed"):
        group.call(insert("d"))
    conn.close()


def test_history_is_pruned_in_batches_and_never_grows_past_the_slack(tmp_path: Path, monkeypatch):
    prunes: list[int] = []
    real_prune = PromptQueue._prune

    def counting(self: PromptQueue, conn: StoreConnection, changes: list[Any]) -> None:
        real_prune(self, conn, changes)
        if self._recounted is not None:
            prunes.append(self._recounted)

    monkeypatch.setattr(PromptQueue, "_prune", counting)
    with PromptQueue(tmp_path / "state.sqlite", max_history=200) as queue:  # slack: 1% = 2 entries
        sizes = []
        for n in range(215):
            queue.put({"1": {"class_type": "X", "inputs": {}}}, prompt_id=f"p{n}")
            queue.finish(queue.claim(), outputs={}, status=SUCCESS)
            sizes.append(len(queue.history()))
        assert max(sizes) <= 202
        assert sizes[-1] >= 200
        assert list(queue.history())[-1] == "p214"  # the newest stay
        assert len(prunes) == 5  # at 203, 206, ...: once per 3 prompts past the limit, not once per prompt
        assert set(prunes) == {200}


def test_a_poll_for_a_queued_prompt_is_answered_without_reading(tmp_path: Path, monkeypatch):
    with PromptQueue(tmp_path / "state.sqlite") as queue:
        queue.put({"1": {"class_type": "X", "inputs": {}}}, prompt_id="waiting")
        reader = queue._reader

        class NoReads:
            lock = reader.lock

            def execute(self, *args: Any) -> Any:
                raise AssertionError("read the database")

        monkeypatch.setattr(queue, "_reader", NoReads())
        assert queue.history_json("waiting") == "{}"
        monkeypatch.setattr(queue, "_reader", reader)
        queue.finish(queue.claim(), outputs={"1": {"text": ["x"]}}, status=SUCCESS)
        import json
        assert json.loads(queue.history_json("waiting")) == queue.history("waiting")
        assert queue.history_json("unknown") == "{}"


def test_the_sync_thread_checkpoints_off_the_writers_path(tmp_path: Path, monkeypatch):
    checkpoints: list[str] = []
    real_checkpoint = GroupCommit._checkpoint

    def recording(self: GroupCommit) -> None:
        checkpoints.append(threading.current_thread().name)
        real_checkpoint(self)

    monkeypatch.setattr(GroupCommit, "_checkpoint", recording)
    conn = open_database(tmp_path / "db.sqlite")
    conn.execute("CREATE TABLE t (name TEXT PRIMARY KEY)")
    group = GroupCommit(conn, name="test", checkpoint_interval=0.0)
    try:
        for n in range(3):  # each durable call waits for a sync round, which checkpoints after answering
            group.call(insert(f"n{n}"), durable=True)
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # never on the committing thread
    finally:
        group.close()
    assert checkpoints and set(checkpoints) == {"test-sync"}
    assert group._checkpointer is None  # closed with the group
    assert len(names(conn)) == 3
    conn.close()


def test_a_listener_may_write_again_after_a_change_committed_inline(tmp_path: Path):
    with PromptQueue(tmp_path / "state.sqlite") as queue:
        queue.put({"1": {"class_type": "X", "inputs": {}}}, prompt_id="a")
        heard_on: list[str] = []

        def listener() -> None:
            heard_on.append(threading.current_thread().name)
            if len(heard_on) == 1:  # the claim's notification: write again, synchronously, from inside it
                queue.put({"1": {"class_type": "X", "inputs": {}}}, prompt_id="from-listener")

        queue.add_listener(listener)
        claimed: list[Any] = []
        consumer = threading.Thread(target=lambda: claimed.append(asyncio.run(queue._claim_async())),
                                    name="consumer")
        consumer.start()
        consumer.join(30)
        assert not consumer.is_alive(), "deadlocked"
        assert claimed[0].prompt_id == "a"
        assert heard_on[0] == "consumer"  # committed inline, on the claiming thread
        assert [item.prompt_id for item in queue.pending()] == ["from-listener"]
