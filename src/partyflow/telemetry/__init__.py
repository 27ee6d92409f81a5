"""Traces of workflow runs over OpenTelemetry (issue 18, item 6); configured by `[telemetry]` in config.toml.

Knows nothing of nodes or models: the engine opens a span per prompt and per node, and libraries add theirs
(model calls, embeddings, media) under the current one through `active()`.
"""

from partyflow.telemetry.config import TelemetryConfig, parse_telemetry
from partyflow.telemetry.tracing import Tracing, active, event, fail, mark_error

__all__ = ["TelemetryConfig", "Tracing", "active", "event", "fail", "mark_error", "parse_telemetry"]
