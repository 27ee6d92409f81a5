"""Mapping the `openai` client's exceptions (and the transport errors it lets through) onto our `LLMError`s.

The server's own words are kept, redacted, because they are often the best diagnosis ("model 'x' not found");
our hint says what to change on this side.
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass
from typing import Any

import openai

try:  # the transport under the `openai` client: httpx2 from openai 3, httpx before
    import httpx2
except ImportError:  # pragma: no cover - depends on the installed client
    import httpx as httpx2  # type: ignore[no-redef]

from partyflow.llm import errors

CLIENT_ERRORS = (openai.OpenAIError, httpx2.HTTPError, json.JSONDecodeError)  # what a client call may raise
_OVERFLOW_MARKERS = ("context_length_exceeded", "context length", "context window", "maximum context",
                     "too many tokens", "prompt is too long", "exceeds the model")


@dataclass(frozen=True)
class CallSite:
    """What an error message names: the provider, the model, where it lives, and the secrets to keep out."""

    provider: str
    model: str | None
    base_url: str
    timeout: float
    api_key_env: str | None
    secrets: tuple[str, ...] = ()


def map_error(exc: BaseException, site: CallSite) -> errors.LLMError:
    """Our error for `exc`; anything else (a decoding error, a reply of the wrong shape) is a `BadResponseError`."""
    common: dict[str, Any] = {"provider": site.provider, "model": site.model, "secrets": site.secrets}
    if isinstance(exc, errors.LLMError):
        return exc
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
        return errors.RequestTimeoutError(f"no answer from {site.base_url} within {site.timeout:g}s", **common)
    if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
        return errors.ProviderConnectionError(f"connection to {site.base_url} failed ({_cause(exc)})", **common)
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, site, common)
    return errors.BadResponseError(f"the reply from {site.base_url} is malformed ({_cause(exc)})", **common)


def _status_error(exc: openai.APIStatusError, site: CallSite, common: dict[str, Any]) -> errors.LLMError:
    status = exc.status_code
    said = _server_message(exc)
    common = common | {"status": status}
    if status in (401, 403):
        hint = (f"Check the key in ${site.api_key_env}: it is missing, wrong or lacks access to this model"
                if site.api_key_env else "This provider wants a key: set api_key_env in its config table")
        return errors.AuthError(f"the server refused the credentials: {said}", hint=hint, **common)
    if status == 404:
        return errors.ModelNotFoundError(f"not found at {site.base_url}: {said}", **common)
    if status == 429:
        return errors.RateLimitError(f"rate limited: {said}", retry_after=retry_after(exc.response.headers),
                                     **common)
    if status == 408:
        return errors.RequestTimeoutError(f"the server timed out the request: {said}", **common)
    if status in (400, 413, 422):
        if any(marker in f"{exc.code} {said}".lower() for marker in _OVERFLOW_MARKERS):
            return errors.ContextOverflowError(f"the request does not fit the context window: {said}", **common)
        return errors.InvalidRequestError(f"the server rejected the request: {said}", **common)
    if status == 409 or status >= 500:
        return errors.ServerError(f"the server failed: {said}", **common)
    return errors.LLMError(f"unexpected answer: {said}", hint="See the provider's documentation for this status",
                           **common)


def retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or as an HTTP date."""
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        return None if parsed is None else max(email.utils.mktime_tz(parsed) - time.time(), 0.0)


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    text = exc.response.text if exc.response is not None else ""
    return (text.strip() or exc.message)[:300]


def _cause(exc: BaseException) -> str:
    """The transport's reason for a connection error (the client's own message is generic), else the error."""
    inner = (exc.__cause__ or exc.__context__) if isinstance(exc, openai.APIConnectionError) else None
    shown = inner if inner is not None and str(inner) else exc
    return f"{type(shown).__name__}: {shown}"[:300]
