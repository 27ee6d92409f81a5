"""Traces over OpenTelemetry: one `Tracing` per engine, exporting spans over OTLP/HTTP.

The OpenTelemetry SDK is imported only when a `Tracing` is made (the `otel` extra), so an install without it, or a
home without `[telemetry]`, pays nothing: the engine holds `None` and every instrumented place checks that first.
Nothing here sets OpenTelemetry's process-wide tracer provider; each engine's provider is its own, so two engines
in one process export to their own endpoints.

Which tracing is active travels in a context variable next to OpenTelemetry's own context, so libraries that know
nothing of the engine (model providers, embedders, media services) find it with `active()` and put their spans
under the current one. Threads do not inherit context variables: the engine enters both in its worker threads.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from typing import Any

from partyflow.config import ConfigError
from partyflow.telemetry.config import TelemetryConfig

AttributeValue = str | bool | int | float | tuple[str, ...] | tuple[int, ...] | tuple[float, ...]
MAX_ATTRIBUTE_CHARS = 16_000  # content attributes beyond this are cut (backends reject huge spans)

_ACTIVE: ContextVar[Tracing | None] = ContextVar("partyflow_tracing", default=None)


def active() -> Tracing | None:
    """The tracing of the engine this code runs under, or None (then instrumented code does nothing)."""
    return _ACTIVE.get()


class Tracing:
    """An OpenTelemetry tracer provider with an OTLP/HTTP exporter, and the few span operations partyflow uses."""

    def __init__(self, config: TelemetryConfig, *, environ: Mapping[str, str] | None = None) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            raise ConfigError("[telemetry] is configured but OpenTelemetry is not installed; install the extra: "
                              "pip install 'partyflow[otel]' (or remove the [telemetry] table)") from None
        from opentelemetry import trace

        from partyflow import __version__

        self.config = config
        self.capture_content = config.capture_content
        self._trace = trace
        self._provider = TracerProvider(resource=Resource.create({
            "service.name": config.service_name, "service.version": __version__}))
        exporter = OTLPSpanExporter(endpoint=config.traces_url, headers=config.header_values(environ),
                                    timeout=config.timeout)
        self._exporter = exporter
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self._provider.get_tracer("partyflow", __version__)
        self._closed = False

    # --- spans -----------------------------------------------------------------------------------------------

    def start(self, name: str, attributes: Mapping[str, AttributeValue | None] | None = None, *,
              client: bool = False, parent: Any = None) -> Any:
        """A started span (not current): under `parent` (a context from `context_of`), else the current span."""
        kind = self._trace.SpanKind.CLIENT if client else self._trace.SpanKind.INTERNAL
        return self.tracer.start_span(name, context=parent, kind=kind, attributes=_clean(attributes))

    def context_of(self, span: Any) -> Any:
        """An OpenTelemetry context with `span` current, to start children of it from another thread."""
        return self._trace.set_span_in_context(span)

    def enter(self, span: Any) -> tuple[Any, Token[Tracing | None]]:
        """Make `span` current (and this tracing active) in this context; undo with `leave`, in the same context."""
        from opentelemetry import context

        return context.attach(self._trace.set_span_in_context(span)), _ACTIVE.set(self)

    @staticmethod
    def leave(tokens: tuple[Any, Token[Tracing | None]]) -> None:
        from opentelemetry import context

        otel_token, token = tokens
        _ACTIVE.reset(token)
        context.detach(otel_token)

    @contextlib.contextmanager
    def span(self, name: str, attributes: Mapping[str, AttributeValue | None] | None = None, *,
             client: bool = False, parent: Any = None) -> Iterator[Any]:
        """A span around a block, current inside it; an exception leaving the block marks it failed."""
        span = self.start(name, attributes, client=client, parent=parent)
        tokens = self.enter(span)
        started = time.perf_counter()
        try:
            yield span
        except BaseException as exc:
            fail(span, exc)
            raise
        finally:
            self.leave(tokens)
            span.set_attribute("partyflow.latency", time.perf_counter() - started)
            span.end()

    @contextlib.contextmanager
    def current(self, span: Any) -> Iterator[Any]:
        """`span` current for a block without ending it (a stream's span around each step)."""
        tokens = self.enter(span)
        try:
            yield span
        finally:
            self.leave(tokens)

    # --- export ----------------------------------------------------------------------------------------------

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Export what is buffered now; whether it finished in time."""
        return bool(self._provider.force_flush(int(timeout_s * 1000)))

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Send what is buffered and stop exporting (the engine's close). Bounded: with the receiver down, a
        command's exit waits at most `timeout_s` (default the export timeout, at most 3 s), then drops the rest."""
        if not self._closed:
            self._closed = True
            wait = timeout_s if timeout_s is not None else min(self.config.timeout, 3.0)
            closer = threading.Thread(target=self._provider.shutdown, name="partyflow-otel-close", daemon=True)
            closer.start()
            closer.join(wait)
            if closer.is_alive():  # the receiver does not answer: stop the exporter's retries, drop the rest
                self._exporter.shutdown()
                closer.join(1.0)  # the retry loop notices at once; never wait on it for long


def event(name: str, attributes: Mapping[str, AttributeValue | None] | None = None) -> None:
    """Add an event to the current span when tracing is active (a router's skipped or failed member)."""
    if _ACTIVE.get() is None:
        return
    from opentelemetry import trace

    trace.get_current_span().add_event(name, _clean(attributes))


def fail(span: Any, exc: BaseException, *, kind: str | None = None) -> None:
    """Mark `span` failed by `exc`: ERROR status, `error.type`, and an exception event, all redacted of
    credentials (an error message may quote a request)."""
    from opentelemetry.trace import Status, StatusCode

    from partyflow.llm.redact import redact  # imported on failure only: the engine stays ignorant of models

    message = redact(str(exc) or type(exc).__name__)[:1000]
    span.set_status(Status(StatusCode.ERROR, message))
    span.set_attribute("error.type", kind or type(exc).__qualname__)
    span.add_event("exception", {
        "exception.type": f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."),
        "exception.message": message,
        "exception.stacktrace": redact("".join(traceback.format_exception(exc)))[-MAX_ATTRIBUTE_CHARS:]})


def mark_error(span: Any, description: str, error_type: str) -> None:
    """ERROR status and `error.type` on `span` for a failure that is a value, not an exception (a failed node's
    prompt, a tool error the model is shown)."""
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, description[:1000]))
    span.set_attribute("error.type", error_type)


def _clean(attributes: Mapping[str, AttributeValue | None] | None) -> dict[str, AttributeValue]:
    """Attributes without the unset ones (OpenTelemetry refuses None), long text cut."""
    if not attributes:
        return {}
    cleaned: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, str) and len(value) > MAX_ATTRIBUTE_CHARS:
            value = value[:MAX_ATTRIBUTE_CHARS] + "..."
        cleaned[key] = value
    return cleaned
