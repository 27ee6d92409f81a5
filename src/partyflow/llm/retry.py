"""Retrying failed model calls: exponential backoff with jitter, and the server's Retry-After when it gives one.

The policy decides on our own errors (`LLMError.retryable`, `RateLimitError.retry_after`), so every provider
shares it. Sleeping is injected, which lets tests check the delays without waiting for them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from partyflow.llm.errors import LLMError, RateLimitError

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], None]
AsyncSleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; `max_retry_after` caps how long a server may make us wait."""

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, error: LLMError) -> float | None:
        """Seconds to wait before retry number `attempt` (0-based), or None to give up and raise `error`."""
        if attempt >= self.max_retries or not error.retryable:
            return None
        retry_after = error.retry_after if isinstance(error, RateLimitError) else None
        if retry_after is not None:
            return retry_after if 0 <= retry_after <= self.max_retry_after else None
        backoff = min(self.initial_delay * 2**attempt, self.max_delay)
        return backoff * (1 - 0.25 * random.random())


def call_with_retries(call: Callable[[], T], policy: RetryPolicy, sleep: Sleep = time.sleep) -> T:
    """`call()`, retried per `policy` while it raises retryable `LLMError`s."""
    attempt = 0
    while True:
        try:
            return call()
        except LLMError as error:
            wait = policy.delay(attempt, error)
            if wait is None:
                raise
            _log_retry(error, wait, attempt, policy)
        sleep(wait)
        attempt += 1


async def acall_with_retries(call: Callable[[], Awaitable[T]], policy: RetryPolicy,
                             sleep: AsyncSleep = asyncio.sleep) -> T:
    """The async twin of `call_with_retries`."""
    attempt = 0
    while True:
        try:
            return await call()
        except LLMError as error:
            wait = policy.delay(attempt, error)
            if wait is None:
                raise
            _log_retry(error, wait, attempt, policy)
        await sleep(wait)
        attempt += 1


def _log_retry(error: LLMError, wait: float, attempt: int, policy: RetryPolicy) -> None:
    log.info("retrying in %.2fs (retry %d of %d): %s", wait, attempt + 1, policy.max_retries, error)
