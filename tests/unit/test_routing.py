"""Routers' algorithm apart from the world (issue 18): config checks, strategies, health and the failover plan."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from partyflow.llm.config import ProvidersConfig
from partyflow.llm.errors import (
    AuthError,
    BudgetExceededError,
    ContextOverflowError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderConfigError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
)
from partyflow.llm.routing.config import RouterConfig
from partyflow.llm.routing.health import Circuit, HealthBook
from partyflow.llm.routing.plan import Plan, Verdict, judge
from partyflow.llm.routing.strategy import Candidate, order

PROVIDERS = {name: {"type": "openai_compat", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
             for name in ("a", "b", "c")}


def load(routers: dict[str, Any]) -> ProvidersConfig:
    return ProvidersConfig.from_mapping({"providers": PROVIDERS, "routers": routers}, environ={})


# --- configuration -----------------------------------------------------------------------------------------------

def test_routers_are_entries_beside_providers() -> None:
    config = load({"smart": {"members": ["a", "b"], "strategy": "score",
                             "weights": {"cost": 0.4, "latency": 0.3, "reliability": 0.3}},
                   "outer": {"members": ["smart", "c"]}})
    assert config.names() == ["a", "b", "c", "outer", "smart"]
    assert isinstance(config.entry("outer"), RouterConfig) and config.entry("a").type == "openai_compat"
    assert config.routers["smart"].score_weights() == pytest.approx({"cost": 0.4, "latency": 0.3,
                                                                     "reliability": 0.3})
    with pytest.raises(ProviderConfigError, match="'smart' is a router, not a provider"):
        config.get("smart")


@pytest.mark.parametrize(("routers", "message"), [
    ({"r": {"members": ["r"]}}, r"router 'r' contains itself \(r -> r\)"),
    ({"r": {"members": ["a", "s"]}, "s": {"members": ["r"]}}, r"contains itself \((r -> s -> r|s -> r -> s)\)"),
    ({"r": {"members": ["a", "ghost"]}}, r"member 'ghost' is neither a provider nor a router"),
    ({"r": {"members": []}}, r"\[routers.r\] members"),
    ({"r": {"members": ["a", "a"]}}, "listed twice"),
    ({"r": {"members": ["a"], "strategy": "fastest"}}, r"\[routers.r\] strategy"),
    ({"r": {"members": ["a", "b"], "strategy": "weighted", "weights": {"c": 1}}}, "'c', which are not members"),
    ({"r": {"members": ["a", "b"], "strategy": "score", "weights": {"speed": 1}}}, "not 'speed'"),
    ({"r": {"members": ["a"], "weights": {"a": 1}}}, "applies to strategies"),
    ({"a": {"members": ["b"]}}, "both a provider and a router"),
    ({"r": {"members": ["a"], "colour": "red"}}, "colour: is not a known field"),
])
def test_bad_routers_are_clear_config_errors(routers: dict[str, Any], message: str) -> None:
    with pytest.raises(ProviderConfigError, match=message):
        load(routers)


# --- strategies --------------------------------------------------------------------------------------------------

def router(strategy: str, **fields: Any) -> RouterConfig:
    return RouterConfig(name="r", members=("a", "b", "c"), strategy=strategy, **fields)


def test_priority_round_robin_and_resting_members_last() -> None:
    members = [Candidate("a"), Candidate("b", resting=True), Candidate("c")]
    rng = random.Random(0)
    assert order(router("priority"), members, turn=0, rng=rng) == ["a", "c", "b"]
    assert [order(router("round_robin"), members, turn=t, rng=rng)[0] for t in range(4)] == ["a", "c", "a", "c"]


def test_weighted_first_picks_follow_the_weights() -> None:
    config = router("weighted", weights={"a": 6, "b": 3, "c": 1})
    rng = random.Random(1)
    firsts = Counter(order(config, [Candidate("a"), Candidate("b"), Candidate("c")], turn=t, rng=rng)[0]
                     for t in range(20_000))
    assert {k: round(v / 20_000, 2) for k, v in firsts.items()} == pytest.approx({"a": 0.6, "b": 0.3, "c": 0.1},
                                                                               abs=0.015)


def test_latency_cost_and_score_orders() -> None:
    members = [Candidate("a", latency=0.5, price=3.0, success=0.99), Candidate("b", latency=0.1, price=9.0),
               Candidate("c", latency=None, price=1.0, success=0.2)]
    rng = random.Random(0)
    assert order(router("least_latency"), members, turn=0, rng=rng) == ["c", "b", "a"]  # unmeasured first
    assert order(router("least_cost"), members, turn=0, rng=rng) == ["c", "a", "b"]
    # reliability dominates: c is cheap and unmeasured but fails 80% of the time
    assert order(router("score", weights={"cost": 0.2, "latency": 0.2, "reliability": 0.6}), members,
                 turn=0, rng=rng)[-1] == "c"
    assert order(router("score", weights={"cost": 1}), members, turn=0, rng=rng)[0] == "c"


# --- health ------------------------------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_open_the_circuit_then_one_probe_closes_it() -> None:
    clock = Clock()
    book = HealthBook(clock=clock)
    for _ in range(3):
        admission = book.admit("a", rpm=None, tpm=None, tokens=10)
        assert admission.allowed
        book.failed("a", admission, reason="HTTP 500", cooldown=30, threshold=3)
    refused = book.admit("a", rpm=None, tpm=None, tokens=10)
    assert not refused.allowed and "cooling down" in refused.reason and "HTTP 500" in refused.reason
    clock.now += 31
    probe = book.admit("a", rpm=None, tpm=None, tokens=10)
    assert probe.allowed and probe.probe
    assert not book.admit("a", rpm=None, tpm=None, tokens=10).allowed  # one probe at a time
    book.failed("a", probe, reason="HTTP 500", cooldown=30, threshold=3)  # a failed probe rests twice as long
    clock.now += 31
    assert not book.admit("a", rpm=None, tpm=None, tokens=10).allowed
    clock.now += 30
    probe = book.admit("a", rpm=None, tpm=None, tokens=10)
    book.succeeded("a", probe, seconds=0.2, tokens=10)
    view = book.snapshot("a")
    assert view.circuit is Circuit.CLOSED and view.latency == pytest.approx(0.2) and view.success < 1


def test_a_429_rests_the_member_for_its_retry_after() -> None:
    clock = Clock()
    book = HealthBook(clock=clock)
    admission = book.admit("a", rpm=None, tpm=None, tokens=1)
    book.failed("a", admission, reason="429", cooldown=30, threshold=3, retry_after=5, rate_limited=True)
    clock.now += 4.9
    assert not book.admit("a", rpm=None, tpm=None, tokens=1).allowed
    clock.now += 0.2
    assert book.admit("a", rpm=None, tpm=None, tokens=1).allowed


def test_rpm_and_tpm_token_buckets() -> None:
    clock = Clock()
    book = HealthBook(clock=clock)
    for _ in range(2):
        admission = book.admit("a", rpm=2, tpm=None, tokens=1)
        book.succeeded("a", admission, seconds=0.1, tokens=None)
    refused = book.admit("a", rpm=2, tpm=None, tokens=1)
    assert not refused.allowed and "rpm=2" in refused.reason
    clock.now += 30  # one request's worth refilled
    assert book.admit("a", rpm=2, tpm=None, tokens=1).allowed
    big = book.admit("b", rpm=None, tpm=1000, tokens=900)
    assert big.allowed
    book.succeeded("b", big, seconds=0.1, tokens=100)  # the estimate was high: 800 tokens come back
    assert book.admit("b", rpm=None, tpm=1000, tokens=800).allowed
    assert not book.admit("b", rpm=None, tpm=1000, tokens=800).allowed


# --- the plan ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("error", "verdict", "blame"), [
    (RateLimitError("slow", retry_after=2), Verdict.FAILOVER, True),
    (ServerError("boom", status=503), Verdict.FAILOVER, True),
    (RequestTimeoutError("late"), Verdict.FAILOVER, True),
    (BudgetExceededError("spent"), Verdict.FAILOVER, False),
    (ContextOverflowError("long"), Verdict.LARGER_WINDOW, False),
    (InvalidRequestError("bad", status=400), Verdict.STOP, False),
    (AuthError("who", status=401), Verdict.STOP, False),
    (ModelNotFoundError("where", status=404), Verdict.STOP, False),
])
def test_what_errors_mean(error: Any, verdict: Verdict, blame: bool) -> None:
    judgement = judge(error)
    assert (judgement.verdict, judgement.blame) == (verdict, blame)


def test_context_overflow_moves_on_to_larger_windows_only() -> None:
    plan = Plan(["small", "same", "unknown", "big"], {"small": 4096, "same": 4096, "unknown": None, "big": 32768})
    assert plan.next() == "small"
    assert plan.failed("small", ContextOverflowError("too long")).verdict is Verdict.LARGER_WINDOW
    assert plan.next() == "big"
    error = plan.exhausted("r")
    assert [member for member, _ in error.attempts] == ["small", "same", "unknown"]
    assert "not larger than 4096" in str(error)


def test_max_attempts_counts_sent_calls_not_skips() -> None:
    plan = Plan(["a", "b", "c"], max_attempts=1)
    assert plan.next() == "a"
    plan.skipped("a", "cooling down")
    assert plan.next() == "b"
    plan.failed("b", ServerError("boom"))
    assert plan.next() is None
