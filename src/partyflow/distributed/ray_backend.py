"""`RayBackend`: prompts run on a pool of Ray actors, each holding an `Engine` over the same home.

The server keeps the durable queue and the history; this backend only runs claimed items. Events come back from
the worker as a Ray streaming generator (batches of typed events, then the result), so WebSocket clients see the
same messages as with the local backend. A worker that dies mid-prompt is restarted by Ray while the prompt is
retried on another worker (at most `max_retries` times); the cluster itself going away is reported and the
prompt waits until it is back (it stays `running` in the durable queue, so even a server crash loses nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from partyflow.distributed.backend import BackendUnavailable
from partyflow.distributed.models import MODEL_ACTOR_PREFIX
from partyflow.distributed.placement import NODE_ACTOR_PREFIX
from partyflow.distributed.results import failed, from_wire
from partyflow.distributed.settings import BackendSettings

if TYPE_CHECKING:
    from partyflow.engine.engine import Engine, RunResult
    from partyflow.engine.events import EventSink
    from partyflow.engine.queue import QueueItem

logger = logging.getLogger("partyflow.distributed")

WORKER_PREFIX = "partyflow-worker-"
_RECONNECT_DELAYS = (0.5, 1, 2, 5, 10, 30)
_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BackendUnavailable("the ray backend needs Ray: pip install 'partyflow[ray]'") from None
    return ray


@dataclass
class _Worker:
    id: str
    handle: Any
    running: set[str] = field(default_factory=set)
    failures: int = 0    # times it died under a prompt
    done: int = 0        # prompts it ran to success
    failed: int = 0      # prompts it ended with an error or interrupted
    cache_hits: int = 0  # node results it took from the shared cache


class RayBackend:
    name = "ray"

    def __init__(self, engine: Engine | str, settings: BackendSettings,
                 on_down: Callable[[str], None] | None = None) -> None:
        """`engine`: the server's engine, or just its home path (the driver process has no engine). `on_down` is
        told when the cluster stops answering (the driver process reports it and exits)."""
        self.settings = settings
        self.max_in_flight = settings.max_in_flight
        self.home = settings.worker_home or (engine if isinstance(engine, str) else str(engine.home.root))
        self.on_down = on_down
        self.on_change: Callable[[], None] | None = None  # a worker's prompts changed (the driver process tells)
        self.healthy = False
        self.last_error: str | None = None
        self.retried = 0
        self._workers: list[_Worker] = []
        self._model_actors_seen: set[tuple[str, str]] = set()
        self._started_cluster = False
        self._slots = asyncio.Condition()
        self._connect_lock = asyncio.Lock()

    # ---- connection -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        async with self._connect_lock:
            if not self.healthy:
                await self._connect_and_start()

    async def _connect_and_start(self) -> None:
        await asyncio.to_thread(self._connect)
        await self._start_workers()
        self.healthy, self.last_error = True, None

    def _connect(self) -> None:
        ray = import_ray()
        if ray.is_initialized():
            return  # this process already joined a cluster (tests, notebooks): use it
        common: dict[str, Any] = {"namespace": self.settings.namespace, "log_to_driver": False,
                                  "runtime_env": dict(self.settings.runtime_env) or None}
        address = self.settings.ray_address
        try:
            if address == "local":
                with _loopback_only():
                        ray.init(address="local", num_cpus=self.settings.num_cpus, include_dashboard=False,
                             resources=dict(self.settings.resources) or None,
                             object_store_memory=self.settings.object_store_bytes, **common)
                self._started_cluster = True
            elif _is_loopback(address):  # a cluster on this machine's loopback: join it on loopback too
                with _loopback_only():
                    ray.init(address=address, **common)
            else:
                ray.init(address=address, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BackendUnavailable(f"cannot reach the Ray cluster at {address!r}: {exc} (start it with "
                                     "`ray start --head`, or set [engine] ray_address)") from exc

    async def _start_workers(self) -> None:
        ray = import_ray()
        from partyflow.distributed.actors import PromptWorker

        remote = ray.remote(PromptWorker)
        store = self._shared_cache(ray) if self.settings.shared_cache else None
        workers = []
        for index in range(self.settings.workers):
            worker_id = f"{WORKER_PREFIX}{index}"
            handle = remote.options(
                name=worker_id, namespace=self.settings.namespace, get_if_exists=True, max_restarts=-1,
                max_task_retries=0, num_cpus=self.settings.worker_cpus,
                max_concurrency=self.settings.prompts_per_worker + 8,
            ).remote(self.home, worker_id, {k: dict(v) for k, v in self.settings.pack_resources.items()},
                     self.settings.namespace, store)
            workers.append(_Worker(worker_id, handle))
        await asyncio.gather(*(w.handle.info.remote() for w in workers))  # engines loaded: ready for prompts
        self._workers = workers

    def _shared_cache(self, ray: Any) -> Any:
        """The pool's node-result cache: one named actor, owned by this server (it goes when the server goes)."""
        from partyflow.distributed.shared_cache import CACHE_ACTOR, SharedCacheStore

        return ray.remote(SharedCacheStore).options(
            name=CACHE_ACTOR, namespace=self.settings.namespace, get_if_exists=True, num_cpus=0,
            max_restarts=-1, max_concurrency=1,
        ).remote(self.settings.shared_cache_bytes)

    async def close(self) -> None:
        ray = import_ray()
        if not ray.is_initialized():
            return
        for worker in self._workers:
            ray.kill(worker.handle)
        if self.settings.shared_cache:
            from partyflow.distributed.shared_cache import CACHE_ACTOR

            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(CACHE_ACTOR, namespace=self.settings.namespace))
        detached = [*_named_actors(ray, NODE_ACTOR_PREFIX, self.settings.namespace),
                    *_named_actors(ray, MODEL_ACTOR_PREFIX, self.settings.namespace)]
        for name in detached:  # detached: they would outlive us
            try:
                ray.kill(ray.get_actor(name, namespace=self.settings.namespace))
            except ValueError:
                pass
        self._workers = []
        self.healthy = False
        if self._started_cluster:
            await asyncio.to_thread(ray.shutdown)
            self._started_cluster = False

    # ---- running ----------------------------------------------------------------------------------------------

    async def run(self, item: QueueItem, emit: EventSink) -> RunResult:
        import_ray()
        from ray.exceptions import ActorUnavailableError, RayActorError, RayError

        attempts = 0
        tried: set[str] = set()
        while True:
            if not self.healthy:
                await self._reconnect()
            worker = await self._acquire(item.prompt_id, tried)
            try:
                result = await self._run_on(worker, item, emit)
            except RayActorError as exc:
                if isinstance(exc, ActorUnavailableError) and not await self._cluster_answers():
                    self._mark_down(exc)  # the head went away, not the worker: wait for it, not a retry
                    continue
                attempts += 1
                worker.failures += 1
                tried.add(worker.id)
                self.retried += 1
                logger.warning("worker %s died running prompt %s (attempt %d): %s", worker.id, item.prompt_id,
                               attempts, _first_line(exc))
                if attempts > self.settings.max_retries:
                    return failed(item.prompt_id, f"the prompt's Ray worker died {attempts} times (last: "
                                  f"{_first_line(exc)}); not retried again", "WorkerLost")
                continue
            except RayError as exc:  # the cluster, not the worker: report, wait for it, run again
                self._mark_down(exc)
                continue
            except (ConnectionError, OSError) as exc:
                self._mark_down(exc)
                continue
            finally:
                await self._release(worker, item.prompt_id)
            result.meta.setdefault("backend", {})["attempts"] = attempts + 1
            if result.status == "success":
                worker.done += 1
            else:
                worker.failed += 1
            worker.cache_hits += int(result.meta["backend"].get("shared_cache_hits") or 0)
            self._model_actors_seen.update((a, m) for a, m in result.meta["backend"].get("model_actors") or ())
            return result

    async def _run_on(self, worker: _Worker, item: QueueItem, emit: EventSink) -> RunResult:
        generator = worker.handle.run.remote((item.number, item.prompt_id, item.prompt, item.extra_data,
                                              item.outputs_to_execute))
        result: RunResult | None = None
        try:
            async for ref in generator:
                kind, payload = await ref
                if kind == "events":
                    for event in payload:
                        emit(event)
                else:
                    result = from_wire(payload)
        except asyncio.CancelledError:
            worker.handle.interrupt.remote(item.prompt_id)
            raise
        if result is None:
            raise RuntimeError(f"worker {worker.id} ended prompt {item.prompt_id} without a result")
        return result

    async def _acquire(self, prompt_id: str, tried: set[str]) -> _Worker:
        """A worker with a free slot; one that has not failed this prompt before, when there is one."""
        per_worker = self.settings.prompts_per_worker
        async with self._slots:
            while True:
                free = [w for w in self._workers if len(w.running) < per_worker]
                fresh = [w for w in free if w.id not in tried]
                choice = fresh or free
                if choice:
                    worker = min(choice, key=lambda w: (len(w.running), w.failures))
                    worker.running.add(prompt_id)
                    if self.on_change is not None:
                        self.on_change()
                    return worker
                await self._slots.wait()

    async def _release(self, worker: _Worker, prompt_id: str) -> None:
        async with self._slots:
            worker.running.discard(prompt_id)
            self._slots.notify_all()
        if self.on_change is not None:
            self.on_change()

    def _mark_down(self, exc: BaseException) -> None:
        if self.healthy:
            logger.error("Ray cluster unreachable (%s); queued prompts wait and resume when it is back",
                         _first_line(exc))
        self.healthy, self.last_error = False, _first_line(exc)
        if self.on_down is not None:
            self.on_down(self.last_error)

    async def _cluster_answers(self) -> bool:
        """Whether the head (its GCS) still answers: tells a lost worker from a lost cluster."""
        ray = import_ray()
        try:
            await asyncio.wait_for(asyncio.to_thread(ray.nodes), timeout=5)
            return True
        except Exception:
            return False

    async def _reconnect(self) -> None:
        """Until the cluster answers again. Every prompt that saw it go waits here; the first one in reconnects
        (a private cluster is started afresh) and the others find it healthy."""
        ray = import_ray()
        for attempt in range(10**9):
            async with self._connect_lock:
                if self.healthy:
                    return
                try:
                    if ray.is_initialized():
                        await asyncio.to_thread(ray.shutdown)
                        self._started_cluster = False
                    await self._connect_and_start()
                    logger.warning("Ray cluster is back; resuming")
                    return
                except Exception as exc:  # keep trying: the queue keeps the prompts meanwhile
                    self.last_error = _first_line(exc)
            await asyncio.sleep(_RECONNECT_DELAYS[min(attempt, len(_RECONNECT_DELAYS) - 1)])

    def interrupt(self, prompt_id: str | None = None) -> bool:
        hit = False
        for worker in self._workers:
            for running in list(worker.running):
                if prompt_id is None or running == prompt_id:
                    worker.handle.interrupt.remote(running)
                    hit = True
        return hit

    # ---- status ----------------------------------------------------------------------------------------------

    def workers_snapshot(self) -> list[_Worker]:
        """The workers as the dispatcher knows them (for /metrics: no call to the cluster)."""
        return list(self._workers)

    def loaded_model_actors(self) -> list[tuple[str, str]]:
        """(actor, model) pairs seen in the model actors at the last status or model call."""
        return sorted(self._model_actors_seen)

    async def status(self) -> dict[str, Any]:
        ray = import_ray()
        data: dict[str, Any] = {"backend": "ray", "address": self.settings.ray_address, "healthy": self.healthy,
                                "last_error": self.last_error, "retried": self.retried, "workers": [],
                                "node_actors": [], "model_actors": []}
        if not self.healthy:
            return data
        data["cluster_resources"] = await asyncio.to_thread(ray.cluster_resources)
        infos = await asyncio.gather(*(_info(w.handle) for w in self._workers))
        for worker, info in zip(self._workers, infos, strict=True):
            data["workers"].append({**info, "id": worker.id, "dispatched": sorted(worker.running),
                                    "failures": worker.failures, "done": worker.done, "failed": worker.failed})
        names = await asyncio.to_thread(_named_actors, ray, NODE_ACTOR_PREFIX, self.settings.namespace)
        handles = [ray.get_actor(name, namespace=self.settings.namespace) for name in names]
        data["node_actors"] = list(await asyncio.gather(*(_info(h) for h in handles)))
        names = await asyncio.to_thread(_named_actors, ray, MODEL_ACTOR_PREFIX, self.settings.namespace)
        handles = [ray.get_actor(name, namespace=self.settings.namespace) for name in names]
        data["model_actors"] = list(await asyncio.gather(*(_info(h) for h in handles)))
        self._model_actors_seen = {(a["id"], m["name"]) for a in data["model_actors"] for m in a.get("models", ())}
        data["shared_cache"] = await self._cache_stats(ray) if self.settings.shared_cache else None
        return data

    async def _cache_stats(self, ray: Any) -> dict[str, Any]:
        from ray.exceptions import RayError

        from partyflow.distributed.shared_cache import CACHE_ACTOR

        try:
            handle = ray.get_actor(CACHE_ACTOR, namespace=self.settings.namespace)
            return {**await asyncio.wait_for(handle.stats.remote(), timeout=10), "alive": True}
        except (RayError, ValueError, TimeoutError) as exc:
            return {"alive": False, "error": _first_line(exc)}


async def _info(handle: Any) -> dict[str, Any]:
    from ray.exceptions import RayError

    started = time.perf_counter()
    try:
        info = await asyncio.wait_for(handle.info.remote(), timeout=10)
    except (RayError, TimeoutError) as exc:
        return {"alive": False, "error": _first_line(exc)}
    return {**info, "alive": True, "ping_ms": round((time.perf_counter() - started) * 1000, 2)}


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """Make a private cluster advertise (and so bind) 127.0.0.1 only.

    `ray.init` turns an explicit 127.0.0.1 node address into the machine's outward one; Ray binds loopback only
    where it thinks clusters are off (its macOS/Windows default). That switch is read when the node starts, so it
    is flipped for the start and put back; the processes started meanwhile keep the loopback address.
    """
    from ray._private import ray_constants

    saved_flag, saved_env = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(_CLUSTER_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[_CLUSTER_ENV] = "0"
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(_CLUSTER_ENV, None)
        else:
            os.environ[_CLUSTER_ENV] = saved_env


def _is_loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rpartition(":")[0]
    return host in ("127.0.0.1", "localhost")


def _named_actors(ray: Any, prefix: str, namespace: str) -> list[str]:
    return sorted(entry["name"] for entry in ray.util.list_named_actors(all_namespaces=True)
                  if entry["namespace"] == namespace and entry["name"].startswith(prefix))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
