"""Prometheus metrics for one server, in a registry of its own (two servers in one process never mix counts).

LLM usage is an extension point: `Metrics.usage_extractors` turn engine events into `LlmUsage` records. The default
one reads a pack's custom message named `USAGE_EVENT` (`send_sync("partyflow.llm.usage", {...})`); a provider or pack
that reports usage another way adds its own extractor, or calls `record_llm_usage` directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from partyflow.engine.events import CustomMessage, Event, Executed

logger = logging.getLogger("partyflow.server.metrics")

USAGE_EVENT = "partyflow.llm.usage"
COST_BUCKETS = (0.0001, 0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, float("inf"))
TOKEN_BUCKETS = (100, 1000, 10_000, 50_000, 100_000, 500_000, 1_000_000, float("inf"))
NODE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, float("inf"))


@dataclass(frozen=True)
class LlmUsage:
    provider: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None  # in the currency prices are configured in (USD by convention)


UsageExtractor = Callable[[Event], Iterable[LlmUsage]]


def usage_from_custom_message(event: Event) -> Iterable[LlmUsage]:
    if not isinstance(event, CustomMessage) or event.event != USAGE_EVENT or not isinstance(event.data, Mapping):
        return ()
    data = event.data
    try:
        cost = data.get("cost")
        return (LlmUsage(str(data.get("provider") or "unknown"), int(data.get("prompt_tokens") or 0),
                         int(data.get("completion_tokens") or 0), None if cost is None else float(cost)),)
    except (TypeError, ValueError):
        logger.warning("ignoring malformed %s message: %r", USAGE_EVENT, data)
        return ()


@dataclass
class Metrics:
    """The server's counters; `observe` is an engine event sink, `render` the /metrics body."""

    usage_extractors: list[UsageExtractor] = field(default_factory=lambda: [usage_from_custom_message])
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.prompts_queued = Counter("partyflow_prompts_queued", "Prompts accepted into the queue", registry=r)
        self.prompts_finished = Counter("partyflow_prompts_finished", "Prompts finished, by status "
                                        "(success, error = failed, interrupted)", ["status"], registry=r)
        self.prompts_pending = Gauge("partyflow_prompts_pending", "Prompts waiting in the queue", registry=r)
        self.prompts_running = Gauge("partyflow_prompts_running", "Prompts running now", registry=r)
        self.node_seconds = Histogram("partyflow_node_duration_seconds", "Node execution time by class",
                                      ["class_type"], buckets=NODE_BUCKETS, registry=r)
        self.ws_clients = Gauge("partyflow_websocket_clients", "Connected WebSocket clients", registry=r)
        self.ws_dropped = Counter("partyflow_websocket_dropped", "WebSocket clients disconnected by the server",
                                  ["reason"], registry=r)
        self.llm_tokens = Counter("partyflow_llm_tokens", "LLM tokens by provider and kind (prompt, completion)",
                                  ["provider", "kind"], registry=r)
        self.llm_cost = Counter("partyflow_llm_cost", "LLM cost by provider", ["provider"], registry=r)
        self.prompt_llm_cost = Histogram("partyflow_prompt_llm_cost", "LLM cost of each finished prompt that called "
                                         "a model (from the usage ledger)", buckets=COST_BUCKETS, registry=r)
        self.prompt_llm_tokens = Histogram("partyflow_prompt_llm_tokens", "LLM tokens of each finished prompt that "
                                           "called a model", buckets=TOKEN_BUCKETS, registry=r)

    def observe(self, event: Event, class_type: str | None = None) -> None:
        if isinstance(event, Executed):
            self.node_seconds.labels(class_type or "unknown").observe(max(event.seconds, 0.0))
        for extractor in self.usage_extractors:
            try:
                for usage in extractor(event):
                    self.record_llm_usage(usage)
            except Exception:
                logger.exception("usage extractor %r failed", extractor)

    def record_llm_usage(self, usage: LlmUsage) -> None:
        self.llm_tokens.labels(usage.provider, "prompt").inc(max(usage.prompt_tokens, 0))
        self.llm_tokens.labels(usage.provider, "completion").inc(max(usage.completion_tokens, 0))
        if usage.cost is not None and usage.cost > 0:
            self.llm_cost.labels(usage.provider).inc(usage.cost)

    def record_prompt_usage(self, usage: Mapping[str, Any] | None) -> None:
        """One finished prompt's model usage (the ledger's totals), or nothing when it called no model."""
        if not usage:
            return
        self.prompt_llm_cost.observe(max(float(usage.get("cost") or 0.0), 0.0))
        self.prompt_llm_tokens.observe(max(int(usage.get("prompt_tokens") or 0)
                                           + int(usage.get("completion_tokens") or 0), 0))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def status_label(status: Any) -> str:
    return status if status in ("success", "error", "interrupted") else "error"
