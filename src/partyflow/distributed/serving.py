"""The server's hook: a queue worker that dispatches to the configured backend, and its status route.

With the default `local` backend the server keeps its ordinary `QueueWorker` (nothing changes); with `ray` this
worker claims up to `max_in_flight` prompts and runs them on Ray, while WebSocket routing, metrics and status
messages stay the base worker's.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from partyflow.distributed.backend import ExecutionBackend, make_backend
from partyflow.distributed.dispatch import Dispatcher
from partyflow.distributed.settings import BackendSettings
from partyflow.engine.engine import Engine, RunResult
from partyflow.engine.events import Executing
from partyflow.engine.queue import QueueItem
from partyflow.server.access import prompt_owner
from partyflow.server.context import context
from partyflow.server.hub import ClientHub
from partyflow.server.metrics import Metrics, status_label
from partyflow.server.worker import QueueWorker


def queue_worker(engine: Engine, hub: ClientHub, metrics: Metrics) -> QueueWorker:
    """The queue worker for this home's `[engine] backend`."""
    settings = BackendSettings.from_raw(engine.settings.raw)
    if settings.backend == "local":
        return QueueWorker(engine, hub, metrics)
    return BackendQueueWorker(engine, hub, metrics, make_backend(engine, settings))


class BackendQueueWorker(QueueWorker):
    """Runs prompts on a backend, several at once; `current` is the oldest prompt still running."""

    def __init__(self, engine: Engine, hub: ClientHub, metrics: Metrics, backend: ExecutionBackend) -> None:
        super().__init__(engine, hub, metrics)
        self.backend = backend
        self.dispatcher = Dispatcher(engine, backend, on_start=self._started, on_finish=self._finished)
        if backend.name == "ray":  # remote workers' series on the server's /metrics
            from partyflow.distributed.metrics import RayWorkerCollector

            metrics.registry.register(RayWorkerCollector(backend))  # type: ignore[arg-type]  # a WorkerBook

    async def _serve(self) -> None:
        stop_forwarding = self.engine.forward_interrupts(self.backend.interrupt)  # POST /interrupt reaches workers
        try:
            await self.dispatcher.serve(self._stop)
        finally:
            stop_forwarding()
            await self.backend.close()

    def _started(self, item: QueueItem) -> None:
        client_id = item.extra_data.get("client_id") if isinstance(item.extra_data, dict) else None
        self._routes[item.prompt_id] = (client_id if isinstance(client_id, str) else None, item.prompt,
                                        prompt_owner(item.extra_data))
        self.current = self.current or item
        self.metrics.prompts_running.set(len(self.dispatcher.running))

    def _finished(self, item: QueueItem, result: RunResult) -> None:
        client_id, _, owner = self._routes.pop(item.prompt_id, (None, {}, None))
        if self.current is not None and self.current.prompt_id == item.prompt_id:
            self.current = next(iter(self.dispatcher.running.values()), None)
        self.metrics.prompts_running.set(len(self.dispatcher.running))
        self.metrics.prompts_finished.labels(status_label(result.status)).inc()
        self._flush_status()
        if client_id is not None:
            self.hub.send(Executing(item.prompt_id).to_message(), client_id, owner=owner)


async def get_backend_status(request: web.Request) -> web.Response:
    """GET /partyflow/backend: the backend's workers, running prompts and loaded models (`partyflow ray status`)."""
    worker = context(request).worker
    if isinstance(worker, BackendQueueWorker):
        data: dict[str, Any] = await worker.backend.status()
        data["running"] = sorted(worker.dispatcher.running)
        data["queue_remaining"] = context(request).engine.queue.known_remaining()  # e.g. waiting for the cluster
    else:
        models = [{"name": m.name, "bytes": m.bytes} for m in context(request).engine.loaded_models()]
        current = worker.current.prompt_id if worker.current else None
        data = {"backend": "local", "running": [current] if current else [],
                "workers": [{"id": "local", "alive": True, "models": models}]}
    return web.json_response(data)
