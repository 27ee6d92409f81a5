"""Strategies: the order in which a router tries its members, from what it knows of them. Pure functions.

The first member of the order gets the call; the rest are the failover sequence. Members in cooldown go last
(tried only when every healthy member failed), so a strategy never needs to know about circuits.

- priority: as listed.
- round_robin: as listed, rotated by one per call.
- weighted: a weighted random draw without replacement (the first pick follows the weights exactly).
- least_latency: lowest moving-average latency first; members never measured go first so they get measured.
- least_cost: lowest price per 1k tokens (input + output) first; a member without prices counts as free.
- score: `weights.cost` x cheapness + `weights.latency` x speed + `weights.reliability` x success rate, the first
  two scaled to 0..1 across the members, highest first.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from partyflow.llm.routing.config import RouterConfig


@dataclass(frozen=True)
class Candidate:
    """One member as a strategy sees it."""

    name: str
    success: float = 1.0
    latency: float | None = None
    price: float = 0.0  # per 1k prompt + 1k completion tokens
    resting: bool = False  # in cooldown (or its probe is taken): try last


def order(router: RouterConfig, candidates: Sequence[Candidate], *, turn: int, rng: random.Random) -> list[str]:
    """The members' names in the order to try them for call number `turn` of this router."""
    ready = [c for c in candidates if not c.resting]
    resting = [c for c in candidates if c.resting]
    return [c.name for c in (_ordered(router, ready, turn, rng) + _ordered(router, resting, turn, rng))]


def _ordered(router: RouterConfig, members: list[Candidate], turn: int, rng: random.Random) -> list[Candidate]:
    if len(members) <= 1:
        return members
    strategy = router.strategy
    if strategy == "round_robin":
        shift = turn % len(members)
        return members[shift:] + members[:shift]
    if strategy == "weighted":
        return _weighted_draw(members, {c.name: router.member_weight(c.name) for c in members}, rng)
    if strategy == "least_latency":
        return sorted(members, key=lambda c: -1.0 if c.latency is None else c.latency)
    if strategy == "least_cost":
        return sorted(members, key=lambda c: c.price)
    if strategy == "score":
        scores = _scores(members, router.score_weights())
        return sorted(members, key=lambda c: -scores[c.name])
    return members  # priority


def _weighted_draw(members: list[Candidate], weights: Mapping[str, float], rng: random.Random) -> list[Candidate]:
    """Members drawn one by one with probability proportional to weight; zero-weight members come last."""
    pool = [c for c in members if weights[c.name] > 0]
    drawn: list[Candidate] = []
    while pool:
        total = sum(weights[c.name] for c in pool)
        point = rng.random() * total
        for index, candidate in enumerate(pool):
            point -= weights[candidate.name]
            if point < 0 or index == len(pool) - 1:
                drawn.append(pool.pop(index))
                break
    return drawn + [c for c in members if weights[c.name] <= 0]


def _scores(members: list[Candidate], weights: Mapping[str, float]) -> dict[str, float]:
    prices = [c.price for c in members]
    measured = [c.latency for c in members if c.latency is not None]
    scores = {}
    for c in members:
        cheap = _inverse_scale(c.price, prices)
        # an unmeasured member is assumed as fast as the fastest, so it gets tried and measured
        fast = 1.0 if c.latency is None else _inverse_scale(c.latency, measured)
        scores[c.name] = (weights.get("cost", 0.0) * cheap + weights.get("latency", 0.0) * fast
                          + weights.get("reliability", 0.0) * c.success)
    return scores


def _inverse_scale(value: float, values: Sequence[float]) -> float:
    """1 for the lowest of `values`, 0 for the highest, linear between (1 when they are all equal)."""
    low, high = min(values), max(values)
    return 1.0 if high <= low else (high - value) / (high - low)
