"""`Dispatcher`: the server side of a backend. Claims queued prompts with back-pressure, runs them on the backend,
forwards their events to the engine's bus and records each prompt in history exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from partyflow.distributed.backend import BackendUnavailable, ExecutionBackend
from partyflow.distributed.results import failed

if TYPE_CHECKING:
    from partyflow.engine.engine import Engine, RunResult
    from partyflow.engine.events import Event
    from partyflow.engine.queue import QueueItem

logger = logging.getLogger("partyflow.distributed")

_START_DELAYS = (0.5, 1, 2, 5, 10, 30)


class Dispatcher:
    """At most `backend.max_in_flight` prompts are claimed at once: the rest stay pending in the durable queue,
    where the queue's order, priorities and deletions still apply to them."""

    def __init__(self, engine: Engine, backend: ExecutionBackend, *,
                 on_start: Callable[[QueueItem], None] | None = None,
                 on_finish: Callable[[QueueItem, RunResult], None] | None = None) -> None:
        self.engine = engine
        self.backend = backend
        self.on_start = on_start
        self.on_finish = on_finish
        self.running: dict[str, QueueItem] = {}
        self.available = False

    async def start_backend(self, stop: asyncio.Event) -> bool:
        """Start the backend, retrying (and saying why) until it is up; False if `stop` came first."""
        for attempt in range(10**9):
            try:
                await self.backend.start()
                self.available = True
                return True
            except BackendUnavailable as exc:
                delay = _START_DELAYS[min(attempt, len(_START_DELAYS) - 1)]
                logger.error("%s; retrying in %gs (prompts wait in the queue)", exc, delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                return False
            except TimeoutError:
                continue
        return False

    async def serve(self, stop: asyncio.Event) -> None:
        """Run queued prompts until `stop`; then wait for the claimed ones (the caller cancels after its grace)."""
        if not await self.start_backend(stop):
            return
        slots = asyncio.Semaphore(self.backend.max_in_flight)
        tasks: set[asyncio.Task[RunResult]] = set()
        try:
            while not stop.is_set():
                if not await _acquire_or_stop(slots, stop):
                    break
                item = await self.engine.queue.next(stop)
                if item is None:
                    slots.release()
                    break
                task = asyncio.create_task(self.run_item(item), name=f"partyflow-dispatch-{item.prompt_id}")
                tasks.add(task)
                task.add_done_callback(lambda done: (tasks.discard(done), slots.release()))
            if tasks:
                await asyncio.gather(*list(tasks), return_exceptions=True)
        finally:
            pending = [t for t in tasks if not t.done()]
            for task in pending:  # cancelled prompts stay `running` in the queue: the next start runs them
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def run_item(self, item: QueueItem) -> RunResult:
        """Run one claimed item on the backend and move it into history."""
        self.running[item.prompt_id] = item
        if self.on_start is not None:
            self.on_start(item)
        try:
            try:
                result = await self.backend.run(item, self._emit)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a backend bug must not wedge the queue
                logger.exception("prompt %s could not run on the %s backend", item.prompt_id, self.backend.name)
                result = failed(item.prompt_id, str(exc), type(exc).__name__)
            await asyncio.to_thread(self.engine.queue.finish, item, outputs=result.outputs,
                                    status=result.history_status(), meta={**result.meta, "timings": result.timings})
        finally:
            self.running.pop(item.prompt_id, None)
        if self.on_finish is not None:
            self.on_finish(item, result)
        return result

    def _emit(self, event: Event) -> None:
        """Events from remote workers enter the server's bus as if its own engine had produced them."""
        self.engine.bus.emit(event)


async def _acquire_or_stop(slots: asyncio.Semaphore, stop: asyncio.Event) -> bool:
    if not slots.locked():
        await slots.acquire()
        return True
    acquire = asyncio.ensure_future(slots.acquire())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([acquire, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if acquire.done() and not acquire.cancelled():
        if stop.is_set():
            slots.release()
            return False
        return True
    acquire.cancel()
    return False
