"""What routers know about each provider between calls: health, cooldowns and client-side rate limits.

Per provider (a provider in two routers is one provider, with one health):
- success rate and latency as exponentially weighted moving averages (recent calls count most);
- a circuit breaker: `failures_to_cooldown` failures in a row, or one 429, open it for a cooldown (a 429's
  Retry-After when the server gives one, else the router's `cooldown`, doubling while probes keep failing);
  after it, one call at a time is let through (half-open) and its outcome closes or re-opens the circuit;
- token buckets for the configured `rpm` and `tpm`: a request that would exceed them is not sent (the router
  tries another member instead of being throttled by the server).

The book is plain data plus a lock and an injected clock; it makes no calls. An engine keeps one for its
lifetime so what a router learns in one node call helps the next.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

ALPHA = 0.2  # weight of the newest observation in the moving averages
MAX_COOLDOWN = 600.0


class Circuit(Enum):
    CLOSED = "closed"  # calls flow
    OPEN = "open"  # resting until `open_until`
    HALF_OPEN = "half_open"  # one probe at a time


@dataclass
class TokenBucket:
    """`capacity` tokens refilled at `capacity` per minute; `take` never blocks."""

    capacity: float
    tokens: float = -1.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.capacity / 60.0)
        self.updated = now

    def available(self, now: float) -> float:
        self._refill(now)
        return self.tokens

    def take(self, amount: float, now: float) -> bool:
        """Take `amount` when there is that much (a request larger than the whole bucket may go when it is full)."""
        self._refill(now)
        if self.tokens >= min(amount, self.capacity):
            self.tokens -= amount
            return True
        return False

    def give(self, amount: float, now: float) -> None:
        """Correct an estimate: return tokens (or, negative, take more) once the real usage is known."""
        self._refill(now)
        self.tokens = min(self.capacity, self.tokens + amount)

    def seconds_until(self, amount: float, now: float) -> float:
        self._refill(now)
        missing = min(amount, self.capacity) - self.tokens
        return max(missing, 0.0) * 60.0 / self.capacity


@dataclass
class MemberHealth:
    """One provider's record; read it through `HealthBook.snapshot`."""

    success: float = 1.0  # EWMA of 1 (success) / 0 (failure); optimistic until calls say otherwise
    latency: float | None = None  # EWMA of successful calls' seconds; None until one succeeds
    calls: int = 0
    failures_in_row: int = 0
    circuit: Circuit = Circuit.CLOSED
    open_until: float = 0.0
    last_cooldown: float = 0.0
    probing: bool = False
    last_error: str = ""
    rpm: TokenBucket | None = None
    tpm: TokenBucket | None = None


@dataclass(frozen=True)
class HealthView:
    """A read-only copy of one provider's health, for strategies and reports."""

    name: str
    success: float
    latency: float | None
    calls: int
    circuit: Circuit
    open_until: float
    last_error: str


@dataclass(frozen=True)
class Admission:
    """Whether a call to a member may start now, and if not, why (for the router's final error)."""

    allowed: bool
    reason: str = ""
    probe: bool = False
    estimated_tokens: int = 0


@dataclass
class HealthBook:
    """Health of every provider routers have called; thread-safe."""

    clock: Callable[[], float] = time.monotonic
    _members: dict[str, MemberHealth] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _get(self, name: str) -> MemberHealth:
        return self._members.setdefault(name, MemberHealth())

    def snapshot(self, name: str) -> HealthView:
        with self._lock:
            h = self._get(name)
            return HealthView(name, h.success, h.latency, h.calls, self._circuit(h), h.open_until, h.last_error)

    def _circuit(self, h: MemberHealth) -> Circuit:
        if h.circuit is Circuit.OPEN and self.clock() >= h.open_until:
            return Circuit.HALF_OPEN
        return h.circuit

    def admit(self, name: str, *, rpm: int | None, tpm: int | None, tokens: int) -> Admission:
        """Reserve a call to `name` estimated at `tokens`: checks the circuit and the rate limits, and takes from
        the buckets. Every allowed admission must be followed by `succeeded` or `failed` (or `released`)."""
        now = self.clock()
        with self._lock:
            h = self._get(name)
            circuit = self._circuit(h)
            if circuit is Circuit.OPEN:
                return Admission(False, f"cooling down for {h.open_until - now:.1f}s more after: {h.last_error}")
            if circuit is Circuit.HALF_OPEN and h.probing:
                return Admission(False, "cooling down (a probe call is in flight)")
            if rpm is not None:
                h.rpm = h.rpm if h.rpm is not None and h.rpm.capacity == rpm else TokenBucket(rpm, updated=now)
            if tpm is not None:
                h.tpm = h.tpm if h.tpm is not None and h.tpm.capacity == tpm else TokenBucket(tpm, updated=now)
            if h.rpm is not None and rpm is not None and h.rpm.available(now) < 1:
                return Admission(False, f"client-side limit rpm={rpm} reached "
                                        f"(room again in {h.rpm.seconds_until(1, now):.1f}s)")
            if h.tpm is not None and tpm is not None and h.tpm.available(now) < min(tokens, tpm):
                return Admission(False, f"client-side limit tpm={tpm} reached "
                                        f"(room for ~{tokens} tokens in {h.tpm.seconds_until(tokens, now):.1f}s)")
            if h.rpm is not None and rpm is not None:
                h.rpm.take(1, now)
            if h.tpm is not None and tpm is not None:
                h.tpm.take(tokens, now)
            probe = circuit is Circuit.HALF_OPEN
            if probe:
                h.circuit, h.probing = Circuit.HALF_OPEN, True
            return Admission(True, probe=probe, estimated_tokens=tokens)

    def succeeded(self, name: str, admission: Admission, *, seconds: float, tokens: int | None) -> None:
        now = self.clock()
        with self._lock:
            h = self._get(name)
            h.calls += 1
            h.success = (1 - ALPHA) * h.success + ALPHA
            h.latency = seconds if h.latency is None else (1 - ALPHA) * h.latency + ALPHA * seconds
            h.failures_in_row = 0
            h.circuit, h.probing, h.last_cooldown = Circuit.CLOSED, False, 0.0
            if h.tpm is not None and tokens is not None:
                h.tpm.give(admission.estimated_tokens - tokens, now)

    def failed(self, name: str, admission: Admission, *, reason: str, cooldown: float, threshold: int,
               retry_after: float | None = None, rate_limited: bool = False) -> None:
        """Record a failure the member is to blame for; opens the circuit after `threshold` in a row, at once on
        a 429 (for its Retry-After when given) or when a half-open probe fails (for twice the last cooldown)."""
        now = self.clock()
        with self._lock:
            h = self._get(name)
            h.calls += 1
            h.success = (1 - ALPHA) * h.success
            h.failures_in_row += 1
            h.last_error = reason
            h.probing = False
            if rate_limited or admission.probe or h.failures_in_row >= threshold:
                if retry_after is not None and retry_after > 0:
                    rest = min(retry_after, MAX_COOLDOWN)
                elif admission.probe and h.last_cooldown:
                    rest = min(h.last_cooldown * 2, MAX_COOLDOWN)
                else:
                    rest = cooldown
                h.circuit, h.open_until, h.last_cooldown = Circuit.OPEN, now + rest, rest
            elif h.circuit is Circuit.HALF_OPEN:
                h.circuit = Circuit.CLOSED

    def released(self, name: str, admission: Admission) -> None:
        """The call never reached the member (refused before sending, or not the member's fault): undo the
        reservation without judging the member."""
        now = self.clock()
        with self._lock:
            h = self._get(name)
            if admission.probe:
                h.probing = False
            if h.rpm is not None:
                h.rpm.give(1, now)
            if h.tpm is not None:
                h.tpm.give(admission.estimated_tokens, now)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._members)
