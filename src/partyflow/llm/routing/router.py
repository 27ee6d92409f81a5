"""`RouterModel`: a `ChatModel` over a router's members, the world around the plan of `plan.py`.

For each call it orders the members (`strategy.order`, from the `HealthBook`), then walks the `Plan`: a member is
admitted by the book (circuit, client-side rpm/tpm) or skipped with the reason, called, and its outcome recorded in
the book; the plan says whether to try the next one. Members are built on first use by a factory (so a member
whose key is missing only fails when tried) and with `max_retries = 0`: the router's failover replaces the
provider's own retries, which would otherwise wait out a 429 on a member when another could answer now.

Calls are never sent to two members at once, so one request produces at most one completion that reaches the
workflow. A stream fails over only until its first chunk has reached the caller; after that an error is raised.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

from partyflow.llm.errors import LLMError, ProviderConfigError
from partyflow.llm.routing.config import RouterConfig
from partyflow.llm.routing.health import Admission, Circuit, HealthBook
from partyflow.llm.routing.plan import Plan, Verdict
from partyflow.llm.routing.strategy import Candidate, order
from partyflow.llm.types import ChatChunk, ChatModel, ChatRequest, ChatResponse, EmbeddingResponse
from partyflow.telemetry.tracing import event

log = logging.getLogger(__name__)

MemberFactory = Callable[[str], ChatModel]


class MemberInfo:
    """What the router knows of a member from the configuration: limits, window, price."""

    def __init__(self, name: str, *, rpm: int | None = None, tpm: int | None = None,
                 window: int | None = None, price: float = 0.0) -> None:
        self.name, self.rpm, self.tpm, self.window, self.price = name, rpm, tpm, window, price


class RouterModel:
    """A router as a `ChatModel`. Thread-safe; share one `HealthBook` between instances to keep what they learn."""

    def __init__(self, config: RouterConfig, members: Mapping[str, MemberInfo], factory: MemberFactory, *,
                 health: HealthBook | None = None, rng: random.Random | None = None,
                 check_budget: Callable[[], None] | None = None) -> None:
        self.config = config
        self.name = config.name
        self.default_model: str | None = None
        self.health = health if health is not None else HealthBook()
        self._info = dict(members)
        self._factory = factory
        self._rng = rng or random.Random()
        self._turns = itertools.count()
        self._lock = threading.Lock()
        self._built: dict[str, ChatModel] = {}
        self._check_budget = check_budget

    def __repr__(self) -> str:
        return f"RouterModel(name={self.name!r}, strategy={self.config.strategy!r}, members={self.config.members})"

    # --- the ChatModel API -------------------------------------------------------------------------------------

    def chat(self, request: ChatRequest) -> ChatResponse:
        request, plan = self._start(request)
        while (member := plan.next()) is not None:
            admission = self._admit(member, request, plan)
            if admission is None:
                continue
            started = time.perf_counter()
            try:
                response = self._member(member).chat(request)
            except LLMError as error:
                self._failed(member, admission, error, plan)
                continue
            except BaseException:
                self.health.released(member, admission)
                raise
            return self._succeeded(member, admission, started, response)
        raise plan.exhausted(self.name)

    async def achat(self, request: ChatRequest) -> ChatResponse:
        request, plan = self._start(request)
        while (member := plan.next()) is not None:
            admission = self._admit(member, request, plan)
            if admission is None:
                continue
            started = time.perf_counter()
            try:
                response = await self._member(member).achat(request)
            except LLMError as error:
                self._failed(member, admission, error, plan)
                continue
            except BaseException:
                self.health.released(member, admission)
                raise
            return self._succeeded(member, admission, started, response)
        raise plan.exhausted(self.name)

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        request, plan = self._start(request)
        while (member := plan.next()) is not None:
            admission = self._admit(member, request, plan)
            if admission is None:
                continue
            started, delivered = time.perf_counter(), False
            try:
                for chunk in self._member(member).stream(request):
                    if chunk.response is not None:
                        yield ChatChunk(response=self._succeeded(member, admission, started, chunk.response))
                        return
                    delivered = True
                    yield chunk
            except LLMError as error:
                if delivered:  # text already reached the caller: another member would repeat it
                    self._blame(member, admission, error)
                    raise
                self._failed(member, admission, error, plan)
                continue
            except BaseException:
                self.health.released(member, admission)
                raise
            self._failed(member, admission, LLMError("the stream ended without a reply", provider=member), plan)
        raise plan.exhausted(self.name)

    async def astream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        request, plan = self._start(request)
        while (member := plan.next()) is not None:
            admission = self._admit(member, request, plan)
            if admission is None:
                continue
            started, delivered = time.perf_counter(), False
            try:
                async for chunk in self._member(member).astream(request):
                    if chunk.response is not None:
                        yield ChatChunk(response=self._succeeded(member, admission, started, chunk.response))
                        return
                    delivered = True
                    yield chunk
            except LLMError as error:
                if delivered:
                    self._blame(member, admission, error)
                    raise
                self._failed(member, admission, error, plan)
                continue
            except BaseException:
                self.health.released(member, admission)
                raise
            self._failed(member, admission, LLMError("the stream ended without a reply", provider=member), plan)
        raise plan.exhausted(self.name)

    # --- embeddings (issue 18: routers wherever an embeddings provider is accepted) ----------------------------

    def embed(self, texts: Sequence[str], *, model: str | None = None) -> EmbeddingResponse:
        """Vectors from the first member that answers, with the same failover as chat. Without `model`, each
        member embeds with its own `embedding_model` (check with `embedding_model_of` that they agree)."""
        plan = self._plan()
        tokens = _text_tokens(texts)
        while (member := plan.next()) is not None:
            admission = self._admit_tokens(member, tokens, plan)
            if admission is None:
                continue
            started = time.perf_counter()
            try:
                response = self._embedder(member).embed(texts, model=model)
            except LLMError as error:
                self._failed(member, admission, error, plan)
                continue
            except BaseException:
                self.health.released(member, admission)
                raise
            return self._embedded(member, admission, started, response)
        raise plan.exhausted(self.name)

    async def aembed(self, texts: Sequence[str], *, model: str | None = None) -> EmbeddingResponse:
        plan = self._plan()
        tokens = _text_tokens(texts)
        while (member := plan.next()) is not None:
            admission = self._admit_tokens(member, tokens, plan)
            if admission is None:
                continue
            started = time.perf_counter()
            try:
                response = await self._embedder(member).aembed(texts, model=model)
            except LLMError as error:
                self._failed(member, admission, error, plan)
                continue
            except BaseException:
                self.health.released(member, admission)
                raise
            return self._embedded(member, admission, started, response)
        raise plan.exhausted(self.name)

    def close(self) -> None:
        with self._lock:
            built, self._built = list(self._built.values()), {}
        for member in built:
            member.close()

    async def aclose(self) -> None:
        with self._lock:
            built, self._built = list(self._built.values()), {}
        for member in built:
            closer = getattr(member, "aclose", None)
            if closer is not None:
                await closer()
            else:
                member.close()

    # --- internals ---------------------------------------------------------------------------------------------

    def _start(self, request: ChatRequest) -> tuple[ChatRequest, Plan]:
        """Members in this call's order; each member calls its own model, so a model name in the request is
        dropped (it would mean something else, or nothing, to the other members)."""
        if request.model is not None:
            request = request.model_copy(update={"model": None})
        return request, self._plan()

    def _plan(self) -> Plan:
        """The budget checked, then the members in this call's order."""
        if self._check_budget is not None:
            self._check_budget()
        candidates = []
        for name in self.config.members:
            view = self.health.snapshot(name)
            info = self._info.get(name) or MemberInfo(name)
            candidates.append(Candidate(name=name, success=view.success, latency=view.latency, price=info.price,
                                        resting=view.circuit is not Circuit.CLOSED))
        with self._lock:
            turn = next(self._turns)
            ordered = order(self.config, candidates, turn=turn, rng=self._rng)
        windows = {name: (self._info.get(name) or MemberInfo(name)).window for name in self.config.members}
        return Plan(ordered, windows, self.config.max_attempts)

    def _admit(self, member: str, request: ChatRequest, plan: Plan) -> Admission | None:
        return self._admit_tokens(member, estimate_tokens(request), plan)

    def _admit_tokens(self, member: str, tokens: int, plan: Plan) -> Admission | None:
        info = self._info.get(member) or MemberInfo(member)
        admission = self.health.admit(member, rpm=info.rpm, tpm=info.tpm, tokens=tokens)
        if not admission.allowed:
            plan.skipped(member, admission.reason)
            event("partyflow.router.skipped", {"partyflow.router.member": member,
                                               "partyflow.router.reason": admission.reason})
            return None
        return admission

    def _member(self, name: str) -> ChatModel:
        with self._lock:
            built = self._built.get(name)
        if built is not None:
            return built
        try:
            made = self._factory(name)
        except LLMError:
            raise
        except ImportError as exc:  # a missing optional dependency of the member's type
            raise ProviderConfigError(f"cannot be set up ({exc})", provider=name) from None
        with self._lock:
            return self._built.setdefault(name, made)

    def _embedder(self, name: str) -> Any:
        """A member's embeddings side. A member without one is a configuration mistake: a plain `LLMError`, which
        the plan stops at (naming the member) rather than failing over and hiding it."""
        built = self._member(name)
        if not callable(getattr(built, "embed", None)):
            raise LLMError(f"router {self.name!r}: member {name!r} offers no embeddings (chat only)",
                           provider=name, hint="Route embeddings over members that serve them "
                           "(openai_compat providers with an embedding_model)")
        return built

    def _embedded(self, member: str, admission: Admission, started: float,
                  response: EmbeddingResponse) -> EmbeddingResponse:
        tokens = response.usage.total_tokens if response.usage is not None else None
        self.health.succeeded(member, admission, seconds=time.perf_counter() - started, tokens=tokens)
        return response

    def _succeeded(self, member: str, admission: Admission, started: float, response: ChatResponse) -> ChatResponse:
        tokens = response.usage.total_tokens if response.usage is not None else None
        self.health.succeeded(member, admission, seconds=time.perf_counter() - started, tokens=tokens)
        return response

    def _failed(self, member: str, admission: Admission, error: LLMError, plan: Plan) -> None:
        judgement = plan.failed(member, error)
        if judgement.blame:
            self.health.failed(member, admission, reason=_short(error), cooldown=self.config.cooldown,
                               threshold=self.config.failures_to_cooldown, retry_after=judgement.retry_after,
                               rate_limited=judgement.rate_limited)
        else:
            self.health.released(member, admission)
        log.info("router %s: member %s failed (%s); %s", self.name, member, _short(error),
                 "stopping" if judgement.verdict is Verdict.STOP else "trying the next member")
        event("partyflow.router.failover" if judgement.verdict is not Verdict.STOP else "partyflow.router.stop",
              {"partyflow.router.member": member, "partyflow.router.reason": _short(error),
               "partyflow.router.verdict": judgement.verdict.value})
        if judgement.verdict is Verdict.STOP:
            raise error

    def _blame(self, member: str, admission: Admission, error: LLMError) -> None:
        self.health.failed(member, admission, reason=_short(error), cooldown=self.config.cooldown,
                           threshold=self.config.failures_to_cooldown)


def estimate_tokens(request: ChatRequest) -> int:
    """A request's tokens before sending it, for the tpm bucket: ~4 characters a token, plus the reply's room."""
    chars = 0
    for message in request.messages:
        content: Any = getattr(message, "content", None)
        if isinstance(content, str):
            chars += len(content)
        elif content:
            chars += sum(len(getattr(part, "text", "") or "") for part in content)
    return chars // 4 + 4 * len(request.messages) + (request.max_tokens or 256)


def _text_tokens(texts: Sequence[str]) -> int:
    """Texts' tokens before sending them, for the tpm bucket (~4 characters a token)."""
    return sum(len(text) for text in texts) // 4 + len(texts)


def _short(error: LLMError) -> str:
    status = f"HTTP {error.status} " if error.status is not None else ""
    return f"{type(error).__name__} {status}{error.message}"[:200]
