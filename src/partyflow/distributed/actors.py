"""The code that runs inside Ray actors: prompt workers and node (model) actors.

Both are plain classes here; `ray_backend` wraps them with `ray.remote` at run time, so this module imports
without Ray. Each actor builds its own `Engine` over the home path it is given: on one machine (or with a shared
filesystem) that is the server's home, so every worker sees the same packs and models; elsewhere the packs come
with the actor's runtime environment and `[engine] ray_worker_home` names where they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import pickle
import threading
import time
import traceback
from collections.abc import AsyncIterator, Mapping
from typing import Any

from partyflow.distributed.models import ModelActors
from partyflow.distributed.results import to_wire
from partyflow.distributed.shared_cache import SharedOutputCache
from partyflow.engine.events import CustomMessage, Event
from partyflow.engine.queue import QueueItem

logger = logging.getLogger("partyflow.distributed")


def _ray_context() -> dict[str, Any]:
    import ray

    context = ray.get_runtime_context()
    return {"node_id": context.get_node_id(), "resources": dict(context.get_assigned_resources())}


class PromptWorker:
    """Runs whole prompts on its own engine and streams their events back in batches as they happen."""

    def __init__(self, home: str, worker_id: str, pack_resources: Mapping[str, Mapping[str, float]],
                 namespace: str, shared_cache: Any = None) -> None:
        from partyflow.distributed.placement import RayNodePlacement
        from partyflow.engine.engine import Engine

        self.worker_id = worker_id
        self.engine = Engine(home)
        self.engine.place_nodes(RayNodePlacement(self.engine, pack_resources, namespace))
        self.model_actors = ModelActors(home, namespace)
        self.engine.host.local_models = self.model_actors  # local models load once, in model actors
        self.shared: SharedOutputCache | None = None
        if shared_cache is not None:
            # the executor's cache lookups are synchronous: a local miss waits (bounded) for the store's answer,
            # which Ray would warn about once per worker as a blocking get in an async actor
            os.environ["RAY_WARN_BLOCKING_GET_INSIDE_ASYNC"] = "0"

            def share(inner: Any) -> SharedOutputCache:
                self.shared = SharedOutputCache(inner, shared_cache, worker_id)
                return self.shared

            self.engine.layer_cache(share)
        self.running: dict[str, float] = {}
        self.finished = 0
        self.started_at = time.time()

    async def run(self, item: tuple[Any, ...]) -> AsyncIterator[tuple[str, Any]]:
        """Yields ("events", [Event, ...]) batches while the prompt runs, then ("result", wire result)."""
        queued = QueueItem(*item)
        batch: list[Event] = []
        ready = asyncio.Event()

        def collect(event: Event) -> None:  # called on this loop's thread (the engine hops there for threads)
            batch.append(_picklable(event))
            ready.set()

        self.running[queued.prompt_id] = time.time()
        hits_before = self.shared.hits if self.shared is not None else 0
        task = asyncio.create_task(self.engine.execute_item(queued, [collect]))
        try:
            while not task.done() or batch:
                if not batch:
                    waiter = asyncio.ensure_future(ready.wait())
                    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                ready.clear()
                if batch:
                    out, batch[:] = list(batch), []
                    yield ("events", out)
            wire = to_wire(task.result())
            wire["meta"]["backend"] = {"name": "ray", "worker": self.worker_id, "pid": os.getpid()}
            wire["meta"]["backend"]["model_actors"] = self.model_actors.take_used()
            if self.shared is not None:  # the server counts them per worker for /metrics
                wire["meta"]["backend"]["shared_cache_hits"] = self.shared.hits - hits_before
            yield ("result", wire)
        finally:
            if not task.done():  # the server went away or cancelled: stop the prompt here too
                self.engine.interrupt(queued.prompt_id)
                with contextlib.suppress(BaseException):
                    await task
            self.running.pop(queued.prompt_id, None)
            self.finished += 1

    def interrupt(self, prompt_id: str | None = None) -> bool:
        return self.engine.interrupt(prompt_id)

    def info(self) -> dict[str, Any]:
        models = [{"name": m.name, "bytes": m.bytes} for m in self.engine.loaded_models()]
        return {"id": self.worker_id, "pid": os.getpid(), **_ray_context(), "running": sorted(self.running),
                "finished": self.finished, "models": models, "node_classes": len(self.engine.registry),
                "home": str(self.engine.home.root),
                "shared_cache_hits": self.shared.hits if self.shared is not None else None}

    def clear_cache(self) -> None:
        self.engine.clear_cache()


class NodeActor:
    """Runs the calls of node classes that declared resources, holding those resources for its lifetime.

    One actor per distinct resource set (named, shared by every prompt worker), so a model such a node loads stays
    loaded for all prompts. Node instances are kept per (node id, class) as ComfyUI keeps them.
    """

    def __init__(self, home: str, key: str) -> None:
        from partyflow.engine.engine import Engine

        self.key = key
        self.engine = Engine(home)
        self.instances: dict[tuple[str, str], Any] = {}
        self.calls = 0

    async def call(self, class_type: str, prompt_id: str, node_id: str,
                   calls: list[dict[str, Any]]) -> tuple[str, Any, Any]:
        """("ok", raw results, seconds) or ("error", message, exception type), never an exception for node faults."""
        from partyflow.nodes.host import NodeScope, host_context, node_scope

        self.calls += 1
        try:
            definition = self.engine.registry.definition(class_type)
            instance = self.instances.get((node_id, class_type))
            if instance is None:
                instance = self.instances[(node_id, class_type)] = definition.cls()
            function = getattr(instance, definition.function)
            interrupt = threading.Event()

            def scope(index: int) -> NodeScope:
                return NodeScope(prompt_id, node_id, _no_progress, interrupt, None, index)

            started = time.perf_counter()
            if definition.is_async:
                raw = []
                for index, kwargs in enumerate(calls):
                    with host_context(self.engine.host), node_scope(scope(index)):
                        raw.append(await function(**kwargs))
            else:
                raw = await asyncio.to_thread(functools.partial(_call_all, self.engine.host, function, calls, scope))
            return ("ok", raw, time.perf_counter() - started)
        except Exception as exc:
            kind = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
            logger.error("node %s (%s) failed on node actor %s:\n%s", node_id, class_type, self.key,
                         "".join(traceback.format_exception(exc)))
            return ("error", str(exc) or type(exc).__name__, getattr(exc, "exception_type", None) or kind)

    def info(self) -> dict[str, Any]:
        models = [{"name": m.name, "bytes": m.bytes} for m in self.engine.loaded_models()]
        return {"id": self.key, "pid": os.getpid(), **_ray_context(), "calls": self.calls, "models": models}


def _call_all(host: Any, function: Any, calls: list[dict[str, Any]], scope: Any) -> list[Any]:
    from partyflow.nodes.host import host_context, node_scope

    results = []
    with host_context(host):
        for index, kwargs in enumerate(calls):
            with node_scope(scope(index)):
                results.append(function(**kwargs))
    return results


def _no_progress(value: float, total: float, preview: Any = None) -> None:
    """Progress of nodes on node actors is not streamed (their prompt's worker is elsewhere)."""


def _picklable(event: Event) -> Event:
    """A pack's custom message whose data cannot travel is forwarded with its data as text instead."""
    if isinstance(event, CustomMessage):
        try:
            pickle.dumps(event.data)
        except Exception:
            return CustomMessage(event.prompt_id, event=event.event, data=repr(event.data),
                                 client_id=event.client_id)
    return event
