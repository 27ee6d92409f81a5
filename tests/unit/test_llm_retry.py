import asyncio

import pytest

from partyflow.llm.errors import AuthError, ProviderConnectionError, RateLimitError
from partyflow.llm.retry import RetryPolicy, acall_with_retries, call_with_retries


def failing(*errors, result="ok"):
    pending = list(errors)

    def call():
        if pending:
            raise pending.pop(0)
        return result

    return call


def test_retry_after_is_honoured_exactly():
    slept = []
    call = failing(RateLimitError("429", retry_after=3.0), RateLimitError("429", retry_after=0))
    assert call_with_retries(call, RetryPolicy(max_retries=2), slept.append) == "ok"
    assert slept == [3.0, 0]


def test_backoff_grows_with_jitter_and_is_capped():
    policy = RetryPolicy(max_retries=10, initial_delay=1.0, max_delay=4.0)
    error = ProviderConnectionError("down")
    delays = [policy.delay(attempt, error) for attempt in range(5)]
    assert 0.75 <= delays[0] <= 1.0 and 1.5 <= delays[1] <= 2.0
    assert all(3.0 <= d <= 4.0 for d in delays[2:])


def test_gives_up_after_max_retries_and_raises_the_last_error():
    slept = []
    last = ProviderConnectionError("third")
    call = failing(ProviderConnectionError("first"), ProviderConnectionError("second"), last)
    with pytest.raises(ProviderConnectionError) as caught:
        call_with_retries(call, RetryPolicy(max_retries=2), slept.append)
    assert caught.value is last and len(slept) == 2


def test_does_not_retry_what_will_fail_again():
    slept = []
    with pytest.raises(AuthError):
        call_with_retries(failing(AuthError("401")), RetryPolicy(), slept.append)
    with pytest.raises(RateLimitError):  # a wait longer than we accept: give up now and say so
        call_with_retries(failing(RateLimitError("429", retry_after=3600)), RetryPolicy(), slept.append)
    assert slept == []


def test_async_retries_the_same_way():
    slept = []

    async def sleep(seconds):
        slept.append(seconds)

    sync_call = failing(RateLimitError("429", retry_after=1.5))

    async def call():
        return sync_call()

    assert asyncio.run(acall_with_retries(call, RetryPolicy(), sleep)) == "ok"
    assert slept == [1.5]
