"""Prometheus series for a Ray backend's remote workers, added to the server's own registry (issue 15 item 6).

A collector rather than counters the backend pushes into: every value is read when /metrics is scraped, from what
the server already knows (the dispatcher's bookkeeping per worker, the results workers sent back, the model
actors the backend last saw), so a scrape never waits on the cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from partyflow.distributed.ray_backend import _Worker


class WorkerBook(Protocol):
    """What both Ray backends (inline driver, driver process) know locally about their workers."""

    healthy: bool

    def workers_snapshot(self) -> list[_Worker]: ...

    def loaded_model_actors(self) -> list[tuple[str, str]]: ...


class RayWorkerCollector(Collector):
    """Per-worker prompts running, done and failed, worker deaths, shared-cache hits; cluster reachability and
    model actors loaded."""

    def __init__(self, backend: WorkerBook) -> None:
        self.backend = backend

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("partyflow_ray_up", "1 while the Ray cluster answers, 0 while prompts wait for it")
        up.add_metric([], 1.0 if self.backend.healthy else 0.0)
        yield up
        running = GaugeMetricFamily("partyflow_ray_worker_prompts_running", "Prompts running on each Ray worker",
                                    labels=["worker"])
        prompts = CounterMetricFamily("partyflow_ray_worker_prompts", "Prompts each Ray worker finished, by status "
                                      "(done = success, failed = error or interrupted)", labels=["worker", "status"])
        deaths = CounterMetricFamily("partyflow_ray_worker_deaths", "Times a Ray worker died under a prompt "
                                     "(the prompt was retried elsewhere)", labels=["worker"])
        hits = CounterMetricFamily("partyflow_ray_worker_cache_hits", "Node results a Ray worker took from the "
                                   "shared cache instead of running the node", labels=["worker"])
        for worker in self.backend.workers_snapshot():
            running.add_metric([worker.id], len(worker.running))
            prompts.add_metric([worker.id, "done"], worker.done)
            prompts.add_metric([worker.id, "failed"], worker.failed)
            deaths.add_metric([worker.id], worker.failures)
            hits.add_metric([worker.id], worker.cache_hits)
        yield from (running, prompts, deaths, hits)
        models = GaugeMetricFamily("partyflow_ray_model_actors_loaded", "Models loaded in Ray model actors (as "
                                   "last seen by the server)", labels=["actor", "model"])
        for actor, model in self.backend.loaded_model_actors():
            models.add_metric([actor, model], 1.0)
        yield models
