"""The failover algorithm of a router, apart from the world it runs in: which member next, and what an error
means. No I/O, no clock, no providers: `RouterModel` asks and reports, the plan decides.

What an error means:
- 429, 5xx, timeouts, dropped connections, malformed replies: the member's fault; try the next member.
- a spent budget, a member that cannot be set up (missing key variable, missing extra), a nested router that ran
  out of members: not the member's health, but it cannot answer; try the next member.
- the prompt does not fit the context window: only members with a known, larger window are worth trying.
- anything else (400 other than context length, 401/403, 404, a bad request): the request's or the user's
  fault; another member would fail the same way or do something else than asked, so stop and raise it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from partyflow.llm.errors import (
    BadResponseError,
    BudgetExceededError,
    ContextOverflowError,
    LLMError,
    ProviderConfigError,
    RateLimitError,
    RouterExhaustedError,
)


class Verdict(Enum):
    FAILOVER = "failover"  # try the next member
    LARGER_WINDOW = "larger_window"  # try only members with a larger context window
    STOP = "stop"  # raise this error


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    blame: bool  # counts against the member's health
    rate_limited: bool = False
    retry_after: float | None = None


def judge(error: LLMError) -> Judgement:
    """What a member's error means for the rest of the call (see the module docstring)."""
    if isinstance(error, ContextOverflowError):
        return Judgement(Verdict.LARGER_WINDOW, blame=False)
    if isinstance(error, BudgetExceededError | ProviderConfigError | RouterExhaustedError):
        return Judgement(Verdict.FAILOVER, blame=False)
    if isinstance(error, RateLimitError):
        return Judgement(Verdict.FAILOVER, blame=True, rate_limited=True, retry_after=error.retry_after)
    if error.retryable or isinstance(error, BadResponseError):
        return Judgement(Verdict.FAILOVER, blame=True)
    return Judgement(Verdict.STOP, blame=False)


@dataclass
class Plan:
    """One routed call: members in the order to try them, and what happened to each so far."""

    order: Sequence[str]
    windows: Mapping[str, int | None] = field(default_factory=dict)
    max_attempts: int | None = None
    attempts: list[tuple[str, str]] = field(default_factory=list)  # (member, why it did not answer)
    sent: int = 0
    _position: int = 0
    _min_window: int | None = None

    def next(self) -> str | None:
        """The next member to try, or None when none is left (or `max_attempts` calls were sent)."""
        if self.max_attempts is not None and self.sent >= self.max_attempts:
            return None
        while self._position < len(self.order):
            member = self.order[self._position]
            self._position += 1
            if self._min_window is not None:
                window = self.windows.get(member)
                if window is None or window <= self._min_window:
                    self.attempts.append((member, f"skipped: its context window ({window or 'unknown'}) is not "
                                                  f"larger than {self._min_window} tokens"))
                    continue
            return member
        return None

    def skipped(self, member: str, reason: str) -> None:
        """`member` was not called (cooling down, over a client-side limit)."""
        self.attempts.append((member, reason))

    def failed(self, member: str, error: LLMError, *, sent: bool = True) -> Judgement:
        """`member` raised `error`; returns what to do. A context overflow narrows the rest to larger windows."""
        self.sent += 1 if sent else 0
        self.attempts.append((member, _reason(error)))
        judgement = judge(error)
        if judgement.verdict is Verdict.LARGER_WINDOW:
            window = self.windows.get(member)
            if window is None:
                return Judgement(Verdict.STOP, blame=False)  # nothing to compare with: the user must shorten
            self._min_window = max(window, self._min_window or 0)
        return judgement

    def exhausted(self, router: str) -> RouterExhaustedError:
        """The final error: every member tried, and why each failed."""
        listed = "; ".join(f"{member}: {why}" for member, why in self.attempts) or "no members"
        return RouterExhaustedError(f"no member could answer ({listed})", provider=router,
                                    attempts=tuple(self.attempts))


def _reason(error: LLMError) -> str:
    """"HTTP 500: the server failed: boom", or the error's kind where there is no status ("RequestTimeout: ...")."""
    if error.status is not None:
        return f"HTTP {error.status}: {error.message}"
    return f"{type(error).__name__.removesuffix('Error') or 'Error'}: {error.message}"
