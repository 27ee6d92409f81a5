"""The queue worker: runs queued prompts one at a time and tells WebSocket clients what happens.

It subscribes once to the engine's event bus (so packs' `send_sync` messages outside a prompt arrive too) and routes
each event of a prompt it runs to the client that queued it (`extra_data.client_id`; everyone when there is none, as
ComfyUI broadcasts). Events of prompts other interfaces run directly (not through the queue) are not forwarded.

Shutdown (`stop`) first stops claiming, then gives the running prompt `grace` seconds to finish. A prompt still
running after that is cancelled *without* being moved to history: it stays in the persistent queue and runs first
when the server starts again (the queue recovers prompts left running).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from partyflow.engine.engine import Engine
from partyflow.engine.events import CustomMessage, Event, Executed, Executing
from partyflow.engine.queue import QueueItem
from partyflow.server.access import prompt_owner
from partyflow.server.hub import ClientHub
from partyflow.server.metrics import Metrics, status_label
from partyflow.server.progress import PromptStream

logger = logging.getLogger("partyflow.server.worker")


class QueueWorker:
    def __init__(self, engine: Engine, hub: ClientHub, metrics: Metrics) -> None:
        self.engine = engine
        self.hub = hub
        self.metrics = metrics
        self.current: QueueItem | None = None
        self.last_node: str | None = None
        self.started_ms: int | None = None  # when `current` began running (the jobs API's execution_start_time)
        # prompt_id -> (client_id, prompt, owner: the signed-in user who queued it, whose sockets alone hear it)
        self._routes: dict[str, tuple[str | None, dict[str, Any], str | None]] = {}
        self._streams: dict[str, PromptStream] = {}  # prompt_id -> its messages' pacing and progress_state
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._status_scheduled = False
        self._unsubscribe: list[Callable[[], None]] = []
        self.free_requested = False

    # ---- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._unsubscribe.append(self.engine.subscribe(self._on_event))
        self._unsubscribe.append(self.engine.queue.add_listener(self._on_queue_change))
        self._task = self._loop.create_task(self._serve(), name="partyflow-queue-worker")

    async def stop(self, grace: float) -> None:
        """Stop claiming; wait up to `grace` seconds for the running prompt, else leave it queued for next start."""
        self._stop.set()
        task = self._task
        if task is not None and not task.done():
            done, _ = await asyncio.wait([task], timeout=max(grace, 0))
            if not done:
                item = self.current
                task.cancel()
                # Same tick as the cancel: the execution is still registered, so cooperative nodes see the
                # interrupt and their threads end; the cancelled run never reaches history.
                if item is not None:
                    self.engine.interrupt(item.prompt_id)
                    logger.warning("prompt %s did not finish within %.1fs of shutdown; it stays queued and runs "
                                   "first on the next start", item.prompt_id, grace)
                await asyncio.gather(task, return_exceptions=True)
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    # ---- running ----------------------------------------------------------------------------------------------

    async def _serve(self) -> None:
        queue = self.engine.queue
        item: QueueItem | None = None
        while not self._stop.is_set():
            if self.free_requested:
                if item is not None:  # free between prompts: the next one waits until the cache is cleared
                    queue.unclaim(item)
                    item = None
                self.free_requested = False
                self.engine.clear_cache()
            if item is None:
                item = await queue.next(self._stop)
                if item is None:
                    return
            item = await self._run(item)
        if item is not None:  # claimed with the last result, but stopping: it runs first on the next start
            queue.unclaim(item)

    async def _run(self, item: QueueItem) -> QueueItem | None:
        """Run `item`; returns the next item, claimed in the same write that recorded this one's result."""
        client_id = item.extra_data.get("client_id") if isinstance(item.extra_data, dict) else None
        client_id = client_id if isinstance(client_id, str) else None
        owner = prompt_owner(item.extra_data)
        self._routes[item.prompt_id] = (client_id, item.prompt, owner)
        if self._loop is not None:
            self._streams[item.prompt_id] = PromptStream(
                item.prompt_id, functools.partial(self.hub.send, client_id=client_id, owner=owner), self._loop)
        self.current, self.last_node = item, None
        self.started_ms = int(time.time() * 1000)
        self.metrics.prompts_running.set(1)
        try:
            result, claimed = await self.engine.run_queued_then_claim(item)
        finally:
            self.metrics.prompts_running.set(0)
            self.current = None
            self._routes.pop(item.prompt_id, None)
            stream = self._streams.pop(item.prompt_id, None)
            if stream is not None:
                stream.close()
        self.metrics.prompts_finished.labels(status_label(result.status)).inc()
        services = getattr(self.engine.host, "usage", None)  # issue 18: cost per prompt, from the usage ledger
        if services is not None:
            try:
                self.metrics.record_prompt_usage(services.prompt_usage(item.prompt_id))
            except Exception:  # metrics must never fail a run
                logger.exception("reading the usage ledger for prompt %s failed", item.prompt_id)
        # After run_queued wrote history, so a client that reads /history on this message finds the result;
        # and after the status that history write caused, the order ComfyUI sends them in.
        self._flush_status()
        if client_id is not None:
            self.hub.send(Executing(item.prompt_id).to_message(), client_id, owner=owner)
        return claimed

    # ---- events -----------------------------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if self._loop is None:
            return
        if threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._forward, event)
        else:
            self._forward(event)

    def _forward(self, event: Event) -> None:
        route = self._routes.get(event.prompt_id)
        prompt = route[1] if route else {}
        if isinstance(event, Executed):
            node = prompt.get(event.node) or prompt.get(event.display_node) or {}
            self.metrics.observe(event, node.get("class_type") if isinstance(node, dict) else None)
        else:
            self.metrics.observe(event)
        if isinstance(event, CustomMessage):
            self.hub.send(event.to_message(), event.client_id or (route[0] if route else None),
                          owner=route[2] if route else None)
            return
        if route is None:
            return  # a prompt another interface runs directly
        message: dict[str, Any] | None
        if isinstance(event, Executed):
            # ComfyUI sends `executed` only for nodes with a ui result
            message = None if event.output is None else {"type": event.type, "data": {
                "node": event.node, "display_node": event.display_node, "output": event.output,
                "prompt_id": event.prompt_id}}
        else:
            message = event.to_message()
            if isinstance(event, Executing):
                self.last_node = event.node
        stream = self._streams.get(event.prompt_id)
        if stream is not None:
            stream.handle(event, message)
        elif message is not None:
            self.hub.send(message, route[0], owner=route[2])

    # ---- queue status -----------------------------------------------------------------------------------------

    def _on_queue_change(self) -> None:
        """Called on whichever thread changed the queue; coalesces bursts into one status message per loop turn."""
        loop = self._loop
        if loop is None or self._status_scheduled:
            return
        self._status_scheduled = True
        try:
            loop.call_soon_threadsafe(self._flush_status)
        except RuntimeError:  # the loop closed during shutdown
            self._status_scheduled = False

    def _flush_status(self) -> None:
        if self._status_scheduled:
            self._broadcast_status()

    def _broadcast_status(self) -> None:
        self._status_scheduled = False
        # the count this process's last change committed: no read that would wait behind another thread's fsync
        remaining = self.engine.queue.known_remaining()
        self.metrics.prompts_pending.set(max(remaining - (1 if self.current else 0), 0))
        self.hub.send(status_message(remaining))


def status_message(queue_remaining: int, sid: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": queue_remaining}}}
    if sid is not None:
        data["sid"] = sid
    return {"type": "status", "data": data}
