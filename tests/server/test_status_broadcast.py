"""Queue status broadcasts use the count the queue's last committed change recorded, not a fresh database read
(which, on the event loop, would wait on the connection lock while another thread's commit waits for fsync)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from partyflow.engine.engine import Engine
from partyflow.server.metrics import Metrics
from partyflow.server.worker import QueueWorker, status_message


class RecordingHub:
    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], str | None]] = []

    def send(self, message: dict[str, Any], client_id: str | None = None) -> None:
        self.sent.append((message, client_id))


def test_status_broadcast_reports_the_committed_count_without_reading_the_database(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    engine = Engine(home=tmp_path, load_custom_nodes=False)
    try:
        queue = engine.queue
        hub = RecordingHub()

        def no_read() -> int:
            raise AssertionError("the status broadcast read the database")

        async def scenario() -> None:
            worker = QueueWorker(engine, hub, Metrics())  # type: ignore[arg-type]
            worker._loop = asyncio.get_running_loop()
            queue.put({"1": {"class_type": "TextValue", "inputs": {"value": "a"}}}, prompt_id="a")
            queue.put({"1": {"class_type": "TextValue", "inputs": {"value": "b"}}}, prompt_id="b")
            monkeypatch.setattr(queue, "remaining", no_read)
            worker._broadcast_status()
            queue.claim()
            worker._broadcast_status()

        asyncio.run(scenario())
        assert [message for message, _ in hub.sent] == [status_message(2), status_message(2)]
        assert all(client is None for _, client in hub.sent)  # to every client
    finally:
        engine.close()
