"""A `ChatModel` and `EmbeddingModel` over any server that speaks the OpenAI chat-completions protocol.

Hosted APIs (OpenAI, DeepSeek, DashScope, GLM, Kimi, Grok, Gemini's OpenAI endpoint, OpenRouter) and local servers
(Ollama, vLLM, llama.cpp's server, LM Studio) differ only in base URL, key and model names. The `openai` client does
the HTTP; retries are ours (its own are switched off) so that every provider shares one policy, honours
Retry-After the same way, and can be tested without waiting.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

import httpx
import openai

from partyflow.llm.config import ProviderConfig
from partyflow.llm.errors import BadResponseError, ProviderConfigError, ProviderConnectionError
from partyflow.llm.providers import openai_wire as wire
from partyflow.llm.providers.openai_errors import CLIENT_ERRORS, CallSite, map_error
from partyflow.llm.retry import AsyncSleep, RetryPolicy, Sleep, acall_with_retries, call_with_retries
from partyflow.llm.streaming import StreamAssembler
from partyflow.llm.types import ChatChunk, ChatRequest, ChatResponse, EmbeddingResponse, FinishReason, Usage

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "no-key"  # sent to servers that need none (local ones); the client insists on some value


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default TLS settings, built once: loading the CA bundle takes ~15 ms, and each client would
    otherwise load it again (twice), which serialises 32 Chat nodes opening their providers at once."""
    return httpx.create_ssl_context()


class OpenAICompatProvider:
    """One configured OpenAI-compatible endpoint. Thread-safe; async calls work from any event loop."""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        environ: Mapping[str, str] | None = None,
        sleep: Sleep = time.sleep,
        async_sleep: AsyncSleep = asyncio.sleep,
    ) -> None:
        if config.type != "openai_compat":
            raise ProviderConfigError(f"type is {config.type!r}, not 'openai_compat'", provider=config.name)
        self.config = config
        self.name = config.name
        self.default_model = config.model
        self.base_url = config.base_url or DEFAULT_BASE_URL
        self._key = config.api_key(environ)
        self._retry = RetryPolicy(max_retries=config.max_retries)
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._client: openai.OpenAI | None = None
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = (
            weakref.WeakKeyDictionary())

    def __repr__(self) -> str:
        return f"OpenAICompatProvider(name={self.name!r}, base_url={self.base_url!r}, model={self.default_model!r})"

    # --- chat --------------------------------------------------------------------------------------------------

    def chat(self, request: ChatRequest) -> ChatResponse:
        model = self._model(request.model)
        body = wire.request_body(request, model)
        completion = call_with_retries(lambda: self._call(model, self._sync().chat.completions.create, **body),
                                       self._retry, self._sleep)
        return self._checked(request, self._response(completion, model))

    async def achat(self, request: ChatRequest) -> ChatResponse:
        model = self._model(request.model)
        body = wire.request_body(request, model)

        async def call() -> Any:
            return await self._acall(model, self._async().chat.completions.create, **body)

        completion = await acall_with_retries(call, self._retry, self._async_sleep)
        return self._checked(request, self._response(completion, model))

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        model = self._model(request.model)
        body = wire.request_body(request, model) | {"stream": True, "stream_options": {"include_usage": True}}
        # Only opening the stream is retried: once text has reached the caller, a retry would repeat it.
        chunks = call_with_retries(lambda: self._call(model, self._sync().chat.completions.create, **body),
                                   self._retry, self._sleep)
        assembler = StreamAssembler(model=model, provider=self.name)
        try:
            for chunk in chunks:
                if piece := self._absorb(assembler, chunk):
                    yield piece
        except Exception as exc:
            self._raise(exc, model)
        finally:
            chunks.close()
        yield ChatChunk(response=self._finished(request, assembler))

    async def astream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        model = self._model(request.model)
        body = wire.request_body(request, model) | {"stream": True, "stream_options": {"include_usage": True}}

        async def open_stream() -> Any:
            return await self._acall(model, self._async().chat.completions.create, **body)

        chunks = await acall_with_retries(open_stream, self._retry, self._async_sleep)
        assembler = StreamAssembler(model=model, provider=self.name)
        try:
            async for chunk in chunks:
                if piece := self._absorb(assembler, chunk):
                    yield piece
        except Exception as exc:
            self._raise(exc, model)
        finally:
            await chunks.close()
        yield ChatChunk(response=self._finished(request, assembler))

    # --- embeddings and models ---------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], *, model: str | None = None) -> EmbeddingResponse:
        model = self._model(model or self.config.embedding_model)
        reply = call_with_retries(
            lambda: self._call(model, self._sync().embeddings.create, model=model, input=list(texts),
                               encoding_format="float"), self._retry, self._sleep)
        return self._embedding(reply, model, len(texts))

    async def aembed(self, texts: Sequence[str], *, model: str | None = None) -> EmbeddingResponse:
        model = self._model(model or self.config.embedding_model)

        async def call() -> Any:
            return await self._acall(model, self._async().embeddings.create, model=model, input=list(texts),
                                     encoding_format="float")

        return self._embedding(await acall_with_retries(call, self._retry, self._async_sleep), model, len(texts))

    def list_models(self) -> list[str]:
        """The model ids the server offers, sorted."""
        page = call_with_retries(lambda: self._call(None, self._sync().models.list), self._retry, self._sleep)
        try:
            return sorted(item.id for item in page)
        except Exception as exc:
            self._raise(exc, None)

    async def alist_models(self) -> list[str]:
        async def call() -> Any:
            return await self._acall(None, self._async().models.list)

        page = await acall_with_retries(call, self._retry, self._async_sleep)
        try:
            return sorted([item.id async for item in page])
        except Exception as exc:
            self._raise(exc, None)

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync client's connections (async clients close with `aclose`, or with their loop)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()
        self.close()

    def __enter__(self) -> OpenAICompatProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals ---------------------------------------------------------------------------------------------

    def _model(self, requested: str | None) -> str:
        model = requested or self.default_model
        if not model:
            raise ProviderConfigError("no model given and no default model configured", provider=self.name,
                                      hint=f"Set 'model' in [providers.{self.name}] or pass a model in the request")
        return model

    def _client_options(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "api_key": self._key or NO_KEY, "timeout": self.config.timeout,
                "max_retries": 0, "default_headers": self.config.extra_headers or None}

    def _sync(self) -> openai.OpenAI:
        if self._client is None:
            self._client = openai.OpenAI(**self._client_options(),
                                         http_client=openai.DefaultHttpxClient(verify=tls_context()))
        return self._client

    def _async(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = self._async_clients[loop] = openai.AsyncOpenAI(
                **self._client_options(), http_client=openai.DefaultAsyncHttpxClient(verify=tls_context()))
        return client

    def _site(self, model: str | None) -> CallSite:
        secrets = (self._key or "", *self.config.extra_headers.values())
        return CallSite(provider=self.name, model=model, base_url=self.base_url, timeout=self.config.timeout,
                        api_key_env=self.config.api_key_env, secrets=tuple(s for s in secrets if s))

    def _raise(self, exc: BaseException, model: str | None) -> NoReturn:
        error = map_error(exc, self._site(model))
        log.debug("%s call failed: %s", self.name, error)
        raise error from None  # the client's exception may quote the request; ours is redacted

    def _call(self, model: str | None, method: Callable[..., Any], /, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except CLIENT_ERRORS as exc:
            self._raise(exc, model)

    async def _acall(self, model: str | None, method: Callable[..., Any], /, **kwargs: Any) -> Any:
        try:
            return await method(**kwargs)
        except CLIENT_ERRORS as exc:
            self._raise(exc, model)

    def _response(self, completion: Any, model: str) -> ChatResponse:
        try:
            return wire.response_from(completion, provider=self.name, model=model, cost=self.config.cost)
        except Exception as exc:
            self._raise(exc, model)

    def _absorb(self, assembler: StreamAssembler, chunk: Any) -> ChatChunk | None:
        text, calls, finish = wire.chunk_parts(chunk)
        assembler.id = assembler.id or chunk.id
        assembler.model = chunk.model or assembler.model
        if finish is not None:
            assembler.finish_reason = FinishReason.parse(finish)
        if chunk.usage is not None:
            assembler.usage = wire.usage_from(chunk.usage, self.config.cost)
        if text:
            assembler.add_text(text)
        for delta in calls:
            assembler.add_tool_call(delta)
        return ChatChunk(text=text, tool_calls=calls) if text or calls else None

    def _finished(self, request: ChatRequest, assembler: StreamAssembler) -> ChatResponse:
        if assembler.finish_reason is None:
            raise ProviderConnectionError("the stream ended before the reply was complete", provider=self.name,
                                          model=assembler.model)
        return self._checked(request, assembler.response())

    def _checked(self, request: ChatRequest, response: ChatResponse) -> ChatResponse:
        """Refuse a reply that is not the JSON the request asked for; the caller gets a clear error, not junk."""
        fmt = request.response_format
        if fmt is None or not fmt.wants_json or response.tool_calls:
            return response
        try:
            response.parsed_json()
        except ValueError:
            raise BadResponseError(
                f"the reply is not the requested JSON (it starts {response.text[:80]!r})", provider=self.name,
                model=response.model, secrets=self._site(None).secrets,
                hint="Lower the temperature, describe the JSON in the prompt, or use a model with JSON mode",
            ) from None
        return response

    def _embedding(self, reply: Any, model: str, expected: int) -> EmbeddingResponse:
        try:
            rows = sorted(reply.data, key=lambda row: row.index)
            vectors = tuple(tuple(float(x) for x in row.embedding) for row in rows)
        except Exception as exc:
            self._raise(exc, model)
        if len(vectors) != expected:
            raise BadResponseError(f"asked for {expected} embeddings, got {len(vectors)}", provider=self.name,
                                   model=model)
        usage = None
        if reply.usage is not None:
            prompt = reply.usage.prompt_tokens or 0
            usage = Usage(prompt_tokens=prompt, cost=self.config.cost(prompt, 0))
        return EmbeddingResponse(vectors=vectors, model=reply.model or model, provider=self.name, usage=usage)

