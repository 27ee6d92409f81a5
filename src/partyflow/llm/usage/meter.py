"""Metering: budgets checked before each call, and each call written to the usage ledger around it.

`Meter` carries the ledger, the budgets, the price table and the call's labels (workflow, prompt, node, user);
`MeteredChatModel` wraps any `ChatModel` with it. The order for one call: check the budgets (a spent one refuses
the call before anything is sent), record the call as unfinished, call, record the outcome with tokens, cost and
latency. A reply without a cost gets one from the price table when the model is in it.

A provider that lies about usage (no usage, negative counts) is not believed: the tokens are estimated from the
text (about 4 characters a token) and the row's `note` says so.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from partyflow.llm.errors import BudgetExceededError, LLMError
from partyflow.llm.types import ChatChunk, ChatModel, ChatRequest, ChatResponse, EmbeddingResponse, Usage
from partyflow.llm.usage.budgets import Budget, period_end, period_start
from partyflow.llm.usage.ledger import CallLabels, UsageLedger
from partyflow.llm.usage.prices import PriceTable


@dataclass(frozen=True)
class Meter:
    ledger: UsageLedger
    budgets: tuple[Budget, ...] = ()
    prices: PriceTable = field(default_factory=PriceTable)
    labels: CallLabels = field(default_factory=CallLabels)
    router: str | None = None

    def for_router(self, name: str) -> Meter:
        """The meter for the members of router `name`: their rows name it, its budgets apply to them."""
        return replace(self, router=name)

    def check(self, *, provider: str | None = None, router: str | None = None) -> None:
        """Raise `BudgetExceededError` when a budget that covers this call is spent."""
        targets = {"provider": provider, "router": router or self.router, "workflow": self.labels.workflow,
                   "user": self.labels.user}
        now = time.time()
        for budget in self.budgets:
            if targets.get(budget.scope) != budget.target:
                continue
            spent = self.ledger.spent(budget.scope, budget.target, period_start(budget.period, now))
            over = (spent.cost >= budget.max_cost if budget.max_cost is not None
                    else spent.tokens >= (budget.max_tokens or 0))
            if over:
                used = f"{spent.cost:.6g} spent" if budget.max_cost is not None else f"{spent.tokens} tokens used"
                left = period_end(budget.period, now) - now
                raise BudgetExceededError(
                    f"{budget.describe()} is spent ({used}); the period ends in {_duration(left)}",
                    provider=provider or router or self.router)

    def wrap(self, provider: ChatModel) -> MeteredChatModel:
        return MeteredChatModel(provider, self)


class MeteredChatModel:
    """A `ChatModel` whose every call is budget-checked and written to the ledger; other attributes pass through."""

    def __init__(self, inner: ChatModel, meter: Meter) -> None:
        self.inner = inner
        self.meter = meter
        self.name = inner.name
        self.default_model = inner.default_model

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)  # AttributeError for a provider without embeddings, as before
        if name == "embed":
            return self._metered_embed(value)
        if name == "aembed":
            return self._metered_aembed(value)
        return value

    def __repr__(self) -> str:
        return f"MeteredChatModel({self.inner!r})"

    # --- embeddings: budget-checked and in the ledger like chat, with operation "embeddings" --------------------

    def _metered_embed(self, embed: Callable[..., EmbeddingResponse]) -> Callable[..., EmbeddingResponse]:
        def metered(texts: Sequence[str], *, model: str | None = None) -> EmbeddingResponse:
            call = self._begin_embedding(model)
            try:
                response = embed(texts, model=model)
            except BaseException as exc:
                self._failed(call, exc)
                raise
            return self._embedded(call, texts, response)
        return metered

    def _metered_aembed(self, aembed: Callable[..., Awaitable[EmbeddingResponse]]
                        ) -> Callable[..., Awaitable[EmbeddingResponse]]:
        async def metered(texts: Sequence[str], *, model: str | None = None) -> EmbeddingResponse:
            call = self._begin_embedding(model)
            try:
                response = await aembed(texts, model=model)
            except BaseException as exc:
                self._failed(call, exc)
                raise
            return self._embedded(call, texts, response)
        return metered

    def _begin_embedding(self, model: str | None) -> tuple[int, float]:
        self.meter.check(provider=self.name)
        config = getattr(self.inner, "config", None)
        model = model or getattr(config, "embedding_model", None) or self.default_model
        call_id = self.meter.ledger.begin(self.name, model, self.meter.labels, router=self.meter.router,
                                          operation="embeddings")
        return call_id, time.perf_counter()

    def _embedded(self, call: tuple[int, float], texts: Sequence[str],
                  response: EmbeddingResponse) -> EmbeddingResponse:
        call_id, started = call
        usage, note = response.usage, None
        if usage is None or usage.prompt_tokens <= 0:
            tokens = sum(len(text) for text in texts) // 4 + len(texts)
            note = "tokens estimated: the provider " + ("reported no usage" if usage is None or
                                                         usage.prompt_tokens == 0 else "reported negative usage")
        else:
            tokens = usage.prompt_tokens
        cost = usage.cost if usage is not None else None
        if cost is None:
            cost = self.meter.prices.cost(response.model, tokens, 0)
        if usage is None or (tokens, cost) != (usage.prompt_tokens, usage.cost):
            response = response.model_copy(update={"usage": Usage(prompt_tokens=tokens, cost=cost)})
        self.meter.ledger.finish(call_id, "ok", prompt_tokens=tokens, cost=cost,
                                 latency=time.perf_counter() - started, model=response.model, note=note)
        return response

    def chat(self, request: ChatRequest) -> ChatResponse:
        call = self._begin(request)
        try:
            response = self.inner.chat(request)
        except BaseException as exc:
            self._failed(call, exc)
            raise
        return self._finished(call, request, response)

    async def achat(self, request: ChatRequest) -> ChatResponse:
        call = self._begin(request)
        try:
            response = await self.inner.achat(request)
        except BaseException as exc:
            self._failed(call, exc)
            raise
        return self._finished(call, request, response)

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        call = self._begin(request)
        final: ChatResponse | None = None
        try:
            for chunk in self.inner.stream(request):
                if chunk.response is not None:
                    final = self._finished(call, request, chunk.response)
                    break
                yield chunk
        except BaseException as exc:
            self._failed(call, exc)
            raise
        if final is None:
            self._failed(call, LLMError("the stream ended without a reply"))
            return
        yield ChatChunk(response=final)

    async def astream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        call = self._begin(request)
        final: ChatResponse | None = None
        try:
            async for chunk in self.inner.astream(request):
                if chunk.response is not None:
                    final = self._finished(call, request, chunk.response)
                    break
                yield chunk
        except BaseException as exc:
            self._failed(call, exc)
            raise
        if final is None:
            self._failed(call, LLMError("the stream ended without a reply"))
            return
        yield ChatChunk(response=final)

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        closer = getattr(self.inner, "aclose", None)
        if closer is not None:
            await closer()
        else:
            self.inner.close()

    # --- internals ---------------------------------------------------------------------------------------------

    def _begin(self, request: ChatRequest) -> tuple[int, float]:
        self.meter.check(provider=self.name)
        call_id = self.meter.ledger.begin(self.name, request.model or self.default_model, self.meter.labels,
                                          router=self.meter.router)
        return call_id, time.perf_counter()

    def _failed(self, call: tuple[int, float], exc: BaseException) -> None:
        call_id, started = call
        reason = str(exc) if isinstance(exc, LLMError) else f"{type(exc).__name__}: {exc}"
        outcome = "unfinished" if isinstance(exc, GeneratorExit) else "error"  # a consumer that stopped reading
        self.meter.ledger.finish(call_id, outcome, latency=time.perf_counter() - started, error=reason[:500])

    def _finished(self, call: tuple[int, float], request: ChatRequest, response: ChatResponse) -> ChatResponse:
        call_id, started = call
        prompt, completion, note = _believed_usage(request, response)
        cost = response.usage.cost if response.usage is not None else None
        if cost is None:
            cost = self.meter.prices.cost(response.model, prompt, completion)
        if response.usage is None or (prompt, completion, cost) != (
                response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.cost):
            response = response.model_copy(update={"usage": Usage(prompt_tokens=prompt,
                                                                  completion_tokens=completion, cost=cost)})
        self.meter.ledger.finish(call_id, "ok", prompt_tokens=prompt, completion_tokens=completion, cost=cost,
                                 latency=time.perf_counter() - started, model=response.model, note=note)
        return response


def _believed_usage(request: ChatRequest, response: ChatResponse) -> tuple[int, int, str | None]:
    usage = response.usage
    if usage is not None and usage.prompt_tokens >= 0 and usage.completion_tokens >= 0 and \
            (usage.prompt_tokens or usage.completion_tokens or not response.text):
        return usage.prompt_tokens, usage.completion_tokens, None
    why = "reported no usage" if usage is None or (usage.prompt_tokens == usage.completion_tokens == 0) \
        else "reported negative token counts"
    prompt = sum(len(str(getattr(m, "content", "") or "")) for m in request.messages) // 4 + 1
    completion = len(response.text or "") // 4 + 1
    return prompt, completion, f"tokens estimated: the provider {why}"


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(max(seconds, 0)), 3600)
    return f"{hours}h{rest // 60:02d}m"
