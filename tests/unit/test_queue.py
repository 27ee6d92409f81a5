"""The persistent prompt queue: ordering, deletion, history in ComfyUI's shape, persistence, waiting and threads."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from partyflow.engine.queue import PromptQueue, QueueItem
from partyflow.store.sqlite import StoreError, open_database, transaction

SUCCESS = {"status_str": "success", "completed": True, "messages": [["execution_start", {"prompt_id": "x"}]]}


def prompt(text: str) -> dict:
    return {"1": {"class_type": "PrimitiveString", "inputs": {"value": text}}}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite"


@pytest.fixture
def queue(db: Path):
    q = PromptQueue(db)
    yield q
    q.close()


def ids(items: list[QueueItem]) -> list[str]:
    return [item.prompt_id for item in items]


def run_through(queue: PromptQueue, *prompt_ids: str) -> None:
    """Put, claim and finish each prompt in turn."""
    for prompt_id in prompt_ids:
        queue.put(prompt(prompt_id), prompt_id=prompt_id)
        item = queue.claim()
        assert item is not None and item.prompt_id == prompt_id
        queue.finish(item, outputs={"1": {"text": [prompt_id]}}, status=SUCCESS)


# -- ordering ------------------------------------------------------------------------------------------------------


def test_items_run_in_the_order_they_were_put(queue):
    for name in "abc":
        queue.put(prompt(name), prompt_id=name)
    assert ids(queue.pending()) == ["a", "b", "c"]
    assert [queue.claim().prompt_id for _ in range(3)] == ["a", "b", "c"]
    assert queue.claim() is None


def test_numbers_rise_and_put_returns_the_stored_item(queue):
    first = queue.put(prompt("a"), extra_data={"client_id": "c1"}, outputs_to_execute=["1"])
    second = queue.put(prompt("b"))
    assert second.number > first.number
    assert len(first.prompt_id) == 36  # a generated uuid
    assert queue.pending() == [first, second]
    assert first.as_comfy() == [first.number, first.prompt_id, prompt("a"), {"client_id": "c1"}, ["1"]]


def test_front_goes_before_every_pending_item(queue):
    for name in "ab":
        queue.put(prompt(name), prompt_id=name)
    queue.put(prompt("urgent"), prompt_id="urgent", front=True)
    queue.put(prompt("more urgent"), prompt_id="more urgent", front=True)
    queue.put(prompt("c"), prompt_id="c")
    assert ids(queue.pending()) == ["more urgent", "urgent", "a", "b", "c"]
    numbers = [item.number for item in queue.pending()]
    assert numbers == sorted(numbers)
    assert queue.claim().prompt_id == "more urgent"


def test_an_explicit_number_is_a_priority_and_ties_keep_their_order(queue):
    queue.put(prompt("late"), prompt_id="late", number=50)
    queue.put(prompt("early"), prompt_id="early", number=-5)
    queue.put(prompt("tie"), prompt_id="tie", number=50)
    queue.put(prompt("next"), prompt_id="next")  # no number: the next of the rising counter (1), before 50
    assert ids(queue.pending()) == ["early", "next", "late", "tie"]
    assert [queue.claim().prompt_id for _ in range(4)] == ["early", "next", "late", "tie"]


def test_front_on_an_empty_queue_still_runs_next(queue):
    queue.put(prompt("a"), prompt_id="a")
    queue.claim()
    queue.put(prompt("f"), prompt_id="f", front=True)
    queue.put(prompt("b"), prompt_id="b")
    assert ids(queue.pending()) == ["f", "b"]


def test_duplicate_prompt_id_is_refused_while_queued_or_in_history(queue):
    queue.put(prompt("a"), prompt_id="a")
    with pytest.raises(ValueError, match="'a' is already in the queue"):
        queue.put(prompt("again"), prompt_id="a")
    queue.finish(queue.claim(), outputs={}, status=SUCCESS)
    with pytest.raises(ValueError, match="'a' is already in history"):
        queue.put(prompt("again"), prompt_id="a")
    assert queue.remaining() == 0


def test_a_prompt_that_is_not_json_is_refused_before_anything_is_stored(queue):
    with pytest.raises(TypeError, match="prompt 'p': prompt cannot be stored as JSON"):
        queue.put({"1": object()}, prompt_id="p")
    assert queue.remaining() == 0


# -- pending, running, delete, clear -------------------------------------------------------------------------------


def test_remaining_counts_pending_and_running(queue):
    for name in "abc":
        queue.put(prompt(name), prompt_id=name)
    queue.claim()
    assert ids(queue.running()) == ["a"]
    assert ids(queue.pending()) == ["b", "c"]
    assert queue.remaining() == 3


def test_delete_removes_pending_items_only(queue):
    for name in "abcd":
        queue.put(prompt(name), prompt_id=name)
    queue.claim()  # "a" is running
    assert queue.delete(["a", "c", "unknown"]) == 1
    assert ids(queue.pending()) == ["b", "d"]
    assert ids(queue.running()) == ["a"]
    assert queue.delete([]) == 0


def test_clear_removes_pending_items_only(queue):
    for name in "abc":
        queue.put(prompt(name), prompt_id=name)
    queue.claim()
    assert queue.clear() == 2
    assert queue.pending() == []
    assert ids(queue.running()) == ["a"]


# -- history -------------------------------------------------------------------------------------------------------


def test_finish_moves_the_item_into_history_in_comfyui_shape(queue):
    item = queue.put(prompt("a"), prompt_id="a", extra_data={"client_id": "c1"}, outputs_to_execute=["1"])
    claimed = queue.claim()
    queue.finish(claimed, outputs={"1": {"text": ["hi"]}}, status=SUCCESS, meta={"1": {"node_id": "1"}})
    assert queue.remaining() == 0
    assert queue.history() == {
        "a": {
            "prompt": [item.number, "a", prompt("a"), {"client_id": "c1"}, ["1"]],
            "outputs": {"1": {"text": ["hi"]}},
            "status": SUCCESS,
            "meta": {"1": {"node_id": "1"}},
        }
    }
    assert queue.history("a") == queue.history()
    assert queue.history("missing") == {}


def test_finish_refuses_an_item_that_is_not_running(queue):
    item = queue.put(prompt("a"), prompt_id="a")
    with pytest.raises(ValueError, match="not running"):
        queue.finish(item, outputs={}, status=SUCCESS)
    queue.finish(queue.claim(), outputs={}, status=SUCCESS)
    with pytest.raises(ValueError, match="not running"):
        queue.finish(item, outputs={}, status=SUCCESS)
    assert list(queue.history()) == ["a"]


def test_history_is_newest_last_and_pages(queue):
    run_through(queue, "a", "b", "c", "d")
    assert list(queue.history()) == ["a", "b", "c", "d"]
    assert list(queue.history(max_items=2)) == ["a", "b"]
    assert list(queue.history(max_items=2, offset=1)) == ["b", "c"]
    assert list(queue.history(offset=3)) == ["d"]
    assert list(queue.history(max_items=3, offset=-1)) == ["b", "c", "d"]  # ComfyUI's "newest n"


def test_history_is_bounded_oldest_first(db):
    with PromptQueue(db, max_history=3) as queue:
        run_through(queue, "a", "b", "c", "d", "e")
        assert list(queue.history()) == ["c", "d", "e"]
    with PromptQueue(db, max_history=2) as queue:  # a lower bound applies on open too
        assert list(queue.history()) == ["d", "e"]


def test_delete_and_clear_history(queue):
    run_through(queue, "a", "b", "c")
    assert queue.delete_history(["b", "unknown"]) == 1
    assert list(queue.history()) == ["a", "c"]
    assert queue.clear_history() == 2
    assert queue.history() == {}


# -- persistence ---------------------------------------------------------------------------------------------------


def test_queue_and_history_survive_reopening(db):
    with PromptQueue(db) as queue:
        run_through(queue, "done")
        queue.put(prompt("a"), prompt_id="a", extra_data={"k": [1, 2]})
        queue.put(prompt("b"), prompt_id="b")
        queue.claim()
        last = queue.put(prompt("c"), prompt_id="c")
    with PromptQueue(db) as queue:
        # "a" was running when the queue closed without finishing it: it is pending again, still first.
        assert ids(queue.pending()) == ["a", "b", "c"]
        assert queue.pending()[0].extra_data == {"k": [1, 2]}
        assert queue.running() == []
        assert list(queue.history()) == ["done"]
        assert queue.put(prompt("d")).number > last.number


def test_a_queue_file_from_a_newer_partyflow_is_refused(db):
    PromptQueue(db).close()
    conn = open_database(db)
    with transaction(conn):
        conn.execute("UPDATE schema_versions SET version = 99 WHERE component = 'queue'")
    conn.close()
    with pytest.raises(StoreError, match="'queue' schema is at version 99"):
        PromptQueue(db)


# -- listeners -----------------------------------------------------------------------------------------------------


def test_listeners_hear_every_queue_change_until_unsubscribed(queue):
    heard: list[int] = []
    unsubscribe = queue.add_listener(lambda: heard.append(queue.remaining()))
    queue.put(prompt("a"), prompt_id="a")
    queue.put(prompt("b"), prompt_id="b")
    item = queue.claim()
    queue.finish(item, outputs={}, status=SUCCESS)
    queue.put(prompt("c"), prompt_id="c")
    queue.delete(["c"])
    queue.put(prompt("d"), prompt_id="d")
    queue.clear()
    assert heard == [1, 2, 2, 1, 2, 1, 2, 0]
    unsubscribe()
    unsubscribe()  # harmless twice
    queue.put(prompt("e"))
    assert len(heard) == 8


def test_a_failing_listener_does_not_undo_or_block_the_change(queue):
    heard: list[str] = []

    def broken() -> None:
        raise RuntimeError("listener bug")

    queue.add_listener(broken)
    queue.add_listener(lambda: heard.append("ok"))
    queue.put(prompt("a"), prompt_id="a")
    assert ids(queue.pending()) == ["a"]
    assert heard == ["ok"]


# -- waiting with next() -------------------------------------------------------------------------------------------


def test_next_returns_a_pending_item_at_once(queue):
    queue.put(prompt("a"), prompt_id="a")
    item = asyncio.run(queue.next())
    assert item.prompt_id == "a"
    assert ids(queue.running()) == ["a"]


def test_next_sleeps_until_a_put_from_another_thread_wakes_it(queue, monkeypatch):
    claims: list[QueueItem | None] = []
    real_claim = queue._claim_async

    async def counted_claim() -> QueueItem | None:
        claims.append(await real_claim())
        return claims[-1]

    monkeypatch.setattr(queue, "_claim_async", counted_claim)

    async def scenario() -> QueueItem | None:
        waiting = asyncio.create_task(queue.next())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiting), 0.2)
        assert claims == [None]  # it waited on the wake-up, not in a polling loop
        producer = threading.Thread(target=queue.put, args=(prompt("a"),), kwargs={"prompt_id": "a"})
        producer.start()
        item = await asyncio.wait_for(waiting, 5)
        producer.join()
        return item

    item = asyncio.run(scenario())
    assert item.prompt_id == "a"
    assert len(claims) == 2


def test_next_returns_none_once_stop_is_set(queue):
    async def scenario() -> QueueItem | None:
        stop = asyncio.Event()
        waiting = asyncio.create_task(queue.next(stop))
        await asyncio.sleep(0)  # let it reach its wait
        stop.set()
        return await asyncio.wait_for(waiting, 5)

    assert asyncio.run(scenario()) is None
    stop = asyncio.Event()
    stop.set()
    queue.put(prompt("a"), prompt_id="a")
    assert asyncio.run(queue.next(stop)) is None
    assert ids(queue.pending()) == ["a"]  # a stopped consumer claims nothing


def test_several_waiters_each_get_a_different_item(queue):
    async def scenario() -> list[str]:
        waiting = [asyncio.create_task(queue.next()) for _ in range(3)]
        await asyncio.sleep(0)
        for name in "abc":
            queue.put(prompt(name), prompt_id=name)
        return [item.prompt_id for item in await asyncio.wait_for(asyncio.gather(*waiting), 5)]

    assert sorted(asyncio.run(scenario())) == ["a", "b", "c"]


# -- threads -------------------------------------------------------------------------------------------------------


def test_producers_and_consumers_on_threads_lose_and_duplicate_nothing(queue):
    producers_done = threading.Event()
    claimed: list[str] = []
    failures: list[BaseException] = []

    def produce(worker: int) -> None:
        try:
            for n in range(15):
                queue.put(prompt(f"{worker}-{n}"), prompt_id=f"{worker}-{n}")
        except BaseException as exc:
            failures.append(exc)

    def consume() -> None:
        try:
            while True:
                item = queue.claim()
                if item is None:
                    if producers_done.is_set() and queue.remaining() == 0:
                        return
                    continue
                claimed.append(item.prompt_id)
                queue.finish(item, outputs={}, status=SUCCESS)
        except BaseException as exc:
            failures.append(exc)

    producers = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    consumers = [threading.Thread(target=consume) for _ in range(3)]
    for thread in producers + consumers:
        thread.start()
    for thread in producers:
        thread.join()
    producers_done.set()
    for thread in consumers:
        thread.join(timeout=30)
    expected = {f"{w}-{n}" for w in range(4) for n in range(15)}
    assert failures == []
    assert sorted(claimed) == sorted(expected)  # each exactly once
    assert set(queue.history()) == expected
    assert queue.remaining() == 0


def test_known_remaining_follows_every_committed_change_without_reading(queue, db):
    assert queue.known_remaining() == 0  # nothing changed yet: read from the database
    for name in ("a", "b", "c"):
        queue.put(prompt(name), prompt_id=name)
    assert queue.known_remaining() == 3
    item = queue.claim()
    assert queue.known_remaining() == 3  # running still counts, as ComfyUI's queue_remaining does
    queue.finish(item, outputs={}, status=SUCCESS)
    assert queue.known_remaining() == 2
    assert queue.delete(["b"]) == 1 and queue.known_remaining() == 1
    assert queue.clear() == 1 and queue.known_remaining() == 0 == queue.remaining()


def test_a_refused_write_leaves_the_count_and_the_rest_of_its_batch_alone(queue):
    queue.put(prompt("a"), prompt_id="a")
    with pytest.raises(ValueError):
        queue.put(prompt("a"), prompt_id="a")  # refused inside its own savepoint
    assert queue.known_remaining() == 1 == queue.remaining()

    async def together() -> list[object]:
        return await asyncio.gather(*(queue.put_async(prompt(name), prompt_id=name) for name in ("b", "a", "c")),
                                    return_exceptions=True)

    results = asyncio.run(together())
    assert [type(r).__name__ for r in results] == ["QueueItem", "ValueError", "QueueItem"]
    assert ids(queue.pending()) == ["a", "b", "c"]
    assert queue.known_remaining() == 3 == queue.remaining()


def test_known_remaining_matches_the_database_under_concurrent_writers(queue):
    def writer(n: int) -> None:
        for i in range(20):
            queue.put(prompt(f"{n}-{i}"), prompt_id=f"{n}-{i}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert queue.known_remaining() == queue.remaining() == 80
