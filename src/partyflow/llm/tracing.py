"""Spans for model calls, following OpenTelemetry's GenAI semantic conventions (issue 18, item 6).

`traced(model, ...)` wraps a `ChatModel` (a provider, a router, a metered provider) when tracing is active for the
code creating it (`partyflow.telemetry.active()`), and returns it unchanged otherwise, so calls outside a traced
engine pay nothing. Each call becomes a CLIENT span named "{operation} {model}" under the current span (the node's,
or a router's for its members) with the attributes of the conventions' version shipped in
opentelemetry-semantic-conventions 0.66 (`gen_ai.provider.name`, not the older `gen_ai.system`):

    gen_ai.operation.name     chat | embeddings | generate_content (images, speech, transcription)
    gen_ai.provider.name      openai, deepseek, ... recognised from the base URL; else the configured name
    gen_ai.request.model / gen_ai.response.model / gen_ai.response.id / gen_ai.response.finish_reasons
    gen_ai.usage.input_tokens / gen_ai.usage.output_tokens
    partyflow.provider        the configured provider (or router) name
    partyflow.cost            money, when the reply or the price table says
    partyflow.latency         seconds

Prompts and answers (`gen_ai.system_instructions`, `gen_ai.input.messages`, `gen_ai.output.messages`) are added
only with `[telemetry] capture_content = true`, as JSON in the conventions' message shape, redacted of anything that
looks like a credential and of the provider's own key. A failed call gets ERROR status, `error.type` and, for HTTP
errors, `http.response.status_code`. Wrap outside the meter, so the cost the meter fills in is on the span.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

from partyflow.llm.redact import redact
from partyflow.llm.types import (
    AssistantMessage,
    ChatChunk,
    ChatModel,
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    ImagePart,
    Message,
    SystemMessage,
    TextPart,
    ToolMessage,
    Usage,
)
from partyflow.telemetry import Tracing, active, fail

T = TypeVar("T")

# hosts of well-known APIs -> the conventions' provider names; anything else is named by its configuration
_KNOWN_HOSTS = (
    ("api.openai.com", "openai"), ("openai.azure.com", "azure.ai.openai"), ("api.deepseek.com", "deepseek"),
    ("api.groq.com", "groq"), ("api.mistral.ai", "mistral_ai"), ("api.anthropic.com", "anthropic"),
    ("api.x.ai", "x_ai"), ("generativelanguage.googleapis.com", "gcp.gemini"), ("api.perplexity.ai", "perplexity"),
    ("api.cohere.com", "cohere"), ("api.cohere.ai", "cohere"), ("openrouter.ai", "openrouter"),
    ("api.together.xyz", "together_ai"),
)
_LOCAL_TYPES = {"transformers": "transformers", "llamacpp": "llama_cpp"}


def genai_provider(provider_type: str, base_url: str | None, name: str) -> str:
    """The `gen_ai.provider.name` of a configured provider."""
    if provider_type in _LOCAL_TYPES:
        return _LOCAL_TYPES[provider_type]
    host = (urlsplit(base_url).hostname or "") if base_url else "api.openai.com"
    for known, provider in _KNOWN_HOSTS:
        if host == known or host.endswith("." + known):
            return provider
    return name


def server_of(base_url: str | None) -> dict[str, Any]:
    if not base_url:
        return {}
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {"server.address": parts.hostname, "server.port": port}


class CallTracer:
    """How one provider's calls are described: its names, its server, and what to redact from content."""

    def __init__(self, tracing: Tracing, *, provider: str, system: str, default_model: str | None = None,
                 attributes: Mapping[str, Any] | None = None, secrets: Iterable[str | None] = (),
                 usage: bool = True, embedding_model: str | None = None) -> None:
        self.tracing = tracing
        self.embedding_model = embedding_model
        self.reports_usage = usage
        self.provider = provider
        self.system = system
        self.default_model = default_model
        self.attributes = dict(attributes or {})
        self.secrets = tuple(s for s in secrets if s)

    def start(self, operation: str, model: str | None, extra: Mapping[str, Any] | None = None) -> Any:
        shown = model or self.default_model or self.provider
        return self.tracing.start(f"{operation} {shown}", {
            "gen_ai.operation.name": operation, "gen_ai.provider.name": self.system,
            "gen_ai.request.model": model or self.default_model, "partyflow.provider": self.provider,
            **self.attributes, **(extra or {})}, client=True)

    @contextmanager
    def call(self, operation: str, model: str | None, extra: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """A span current around one call; an exception leaving the block marks it failed."""
        span = self.start(operation, model, extra)
        started = time.perf_counter()
        tokens = self.tracing.enter(span)
        try:
            yield span
        except BaseException as exc:
            self.failed(span, exc)
            raise
        finally:
            self.tracing.leave(tokens)
            span.set_attribute("partyflow.latency", time.perf_counter() - started)
            span.end()

    def failed(self, span: Any, exc: BaseException) -> None:
        status = getattr(exc, "status", None)
        if isinstance(status, int):
            span.set_attribute("http.response.status_code", status)
        fail(span, exc)

    def content(self, span: Any, key: str, value: Any) -> None:
        """A content attribute, only when capturing is enabled; JSON, redacted."""
        if self.tracing.capture_content and value:
            span.set_attribute(key, redact(json.dumps(value, ensure_ascii=False), self.secrets))

    def usage(self, span: Any, usage: Usage | None) -> None:
        if usage is None or not self.reports_usage:
            return
        span.set_attributes({"gen_ai.usage.input_tokens": usage.prompt_tokens,
                             "gen_ai.usage.output_tokens": usage.completion_tokens})
        if usage.cost is not None:
            span.set_attribute("partyflow.cost", float(usage.cost))


class TracedChatModel:
    """A `ChatModel` whose calls are spans; everything else (embeddings included) passes through, embeddings
    traced as well when the model has them."""

    def __init__(self, inner: ChatModel, tracer: CallTracer) -> None:
        self.inner = inner
        self.tracer = tracer
        self.name = inner.name
        self.default_model = inner.default_model

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if name == "embed":
            return _traced_embed(self.tracer, value)
        if name == "aembed":
            return _traced_aembed(self.tracer, value)
        return value

    def __repr__(self) -> str:
        return f"TracedChatModel({self.inner!r})"

    def chat(self, request: ChatRequest) -> ChatResponse:
        with self.tracer.call("chat", request.model, _request_attributes(request)) as span:
            self._input(span, request)
            response = self.inner.chat(request)
            self._output(span, response)
            return response

    async def achat(self, request: ChatRequest) -> ChatResponse:
        with self.tracer.call("chat", request.model, _request_attributes(request)) as span:
            self._input(span, request)
            response = await self.inner.achat(request)
            self._output(span, response)
            return response

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        span, started = self._stream_span(request)
        chunks = self.inner.stream(request)
        first = True
        try:
            while True:
                with self.tracer.tracing.current(span):  # current only while the provider works: a generator's
                    chunk = next(chunks, None)            # context is its consumer's between steps
                if chunk is None:
                    break
                if chunk.response is not None:
                    self._output(span, chunk.response)
                elif first:
                    first = False
                    span.set_attribute("gen_ai.response.time_to_first_chunk", time.perf_counter() - started)
                yield chunk
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):
                self.tracer.failed(span, exc)
            raise
        finally:
            getattr(chunks, "close", lambda: None)()
            span.set_attribute("partyflow.latency", time.perf_counter() - started)
            span.end()

    async def astream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        span, started = self._stream_span(request)
        chunks = self.inner.astream(request).__aiter__()
        first = True
        try:
            while True:
                with self.tracer.tracing.current(span):
                    try:
                        chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        break
                if chunk.response is not None:
                    self._output(span, chunk.response)
                elif first:
                    first = False
                    span.set_attribute("gen_ai.response.time_to_first_chunk", time.perf_counter() - started)
                yield chunk
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):
                self.tracer.failed(span, exc)
            raise
        finally:
            closer = getattr(chunks, "aclose", None)
            if closer is not None:
                await closer()
            span.set_attribute("partyflow.latency", time.perf_counter() - started)
            span.end()

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        closer = getattr(self.inner, "aclose", None)
        if closer is not None:
            await closer()
        else:
            self.inner.close()

    # --- internals ---------------------------------------------------------------------------------------------

    def _stream_span(self, request: ChatRequest) -> tuple[Any, float]:
        span = self.tracer.start("chat", request.model, {**_request_attributes(request),
                                                         "gen_ai.request.stream": True})
        self._input(span, request)
        return span, time.perf_counter()

    def _input(self, span: Any, request: ChatRequest) -> None:
        if not self.tracer.tracing.capture_content:
            return
        system = [{"type": "text", "content": m.content} for m in request.messages if isinstance(m, SystemMessage)]
        self.tracer.content(span, "gen_ai.system_instructions", system)
        self.tracer.content(span, "gen_ai.input.messages",
                            [_message(m) for m in request.messages if not isinstance(m, SystemMessage)])

    def _output(self, span: Any, response: ChatResponse) -> None:
        span.set_attributes({"gen_ai.response.model": response.model,
                             "partyflow.response.provider": response.provider})
        if response.id:
            span.set_attribute("gen_ai.response.id", response.id)
        if response.finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", (str(response.finish_reason),))
        self.tracer.usage(span, response.usage)
        if self.tracer.tracing.capture_content:
            output = _message(response.message)
            output["finish_reason"] = str(response.finish_reason or "stop")
            self.tracer.content(span, "gen_ai.output.messages", [output])


def traced(model: T, *, provider: str, system: str, default_model: str | None = None,
           attributes: Mapping[str, Any] | None = None, secrets: Iterable[str | None] = (), usage: bool = True,
           embedding_model: str | None = None) -> T:
    """`model` with spans around its calls when tracing is active here; `model` itself otherwise. `usage=False`
    for a span around other model spans (a router's): its tokens and cost are its children's, and backends that
    add up a trace's usage would count them twice."""
    tracing = active()
    if tracing is None:
        return model
    tracer = CallTracer(tracing, provider=provider, system=system, default_model=default_model,
                        attributes=attributes, secrets=secrets, usage=usage, embedding_model=embedding_model)
    return TracedChatModel(model, tracer)  # type: ignore[arg-type,return-value]


def _traced_embed(tracer: CallTracer, embed: Callable[..., EmbeddingResponse]) -> Callable[..., EmbeddingResponse]:
    def traced_embed(texts: Sequence[str], *, model: str | None = None) -> EmbeddingResponse:
        with tracer.call("embeddings", model or _embedding_model(tracer)) as span:
            tracer.content(span, "gen_ai.input.messages", _embedding_input(texts))
            response = embed(texts, model=model)
            _embedded(tracer, span, response)
            return response
    return traced_embed


def _traced_aembed(tracer: CallTracer, aembed: Callable[..., Awaitable[EmbeddingResponse]]
                   ) -> Callable[..., Awaitable[EmbeddingResponse]]:
    async def traced_aembed(texts: Sequence[str], *, model: str | None = None) -> EmbeddingResponse:
        with tracer.call("embeddings", model or _embedding_model(tracer)) as span:
            tracer.content(span, "gen_ai.input.messages", _embedding_input(texts))
            response = await aembed(texts, model=model)
            _embedded(tracer, span, response)
            return response
    return traced_aembed


def _embedding_model(tracer: CallTracer) -> str | None:
    return tracer.embedding_model


def _embedding_input(texts: Sequence[str]) -> list[dict[str, Any]]:
    return [{"role": "user", "parts": [{"type": "text", "content": text}]} for text in texts]


def _embedded(tracer: CallTracer, span: Any, response: EmbeddingResponse) -> None:
    span.set_attributes({"gen_ai.response.model": response.model, "partyflow.response.provider": response.provider,
                         "partyflow.embeddings.count": len(response.vectors)})
    if response.vectors:
        span.set_attribute("gen_ai.embeddings.dimension.count", len(response.vectors[0]))
    tracer.usage(span, response.usage)


def _request_attributes(request: ChatRequest) -> dict[str, Any]:
    return {"gen_ai.request.max_tokens": request.max_tokens, "gen_ai.request.temperature": request.temperature,
            "gen_ai.request.top_p": request.top_p, "gen_ai.request.seed": request.seed,
            "gen_ai.request.stop_sequences": tuple(request.stop) or None,
            "gen_ai.output.type": "json" if request.response_format is not None else None}


def _message(message: Message) -> dict[str, Any]:
    """A message in the conventions' shape: a role and typed parts (images named, never inlined)."""
    parts: list[dict[str, Any]] = []
    content = getattr(message, "content", None)
    if isinstance(message, ToolMessage):
        text = content if isinstance(content, str) else "".join(
            p.text for p in content if isinstance(p, TextPart))
        return {"role": "tool", "parts": [{"type": "tool_call_response", "id": message.tool_call_id,
                                           "response": text}]}
    if isinstance(content, str):
        if content:
            parts.append({"type": "text", "content": content})
    elif content:
        for part in content:
            if isinstance(part, TextPart):
                parts.append({"type": "text", "content": part.text})
            elif isinstance(part, ImagePart):
                shown = part.url if part.url.startswith(("http://", "https://")) else None
                parts.append({"type": "uri", "modality": "image", "uri": shown} if shown else
                             {"type": "blob", "modality": "image", "content": "(inline image omitted)"})
    if isinstance(message, AssistantMessage):
        for call in message.tool_calls:
            parts.append({"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments})
    return {"role": message.role, "parts": parts}
