"""The errors of the model-access layer: one base type, one subclass per thing a user can do something about.

Every message names the provider and the model and ends with what to do. Messages pass through `redact`, so a key
that a server echoes back (or that a caller passes in `secrets`) never reaches a log, a history entry or a UI.
`retryable` tells retry loops and routers which failures are worth another attempt.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from partyflow.config import ConfigError
from partyflow.llm.redact import redact


class LLMError(Exception):
    """A model call (or a provider's setup) that failed; `str()` is one line a user can act on."""

    retryable: ClassVar[bool] = False
    default_hint: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        hint: str | None = None,
        status: int | None = None,
        secrets: Iterable[str | None] = (),
    ) -> None:
        secrets = tuple(secrets)
        self.message = redact(message, secrets)
        self.provider = provider
        self.model = model
        self.hint = redact(hint if hint is not None else self.default_hint, secrets)
        self.status = status
        super().__init__(self._render())

    def _render(self) -> str:
        where = ", ".join(part for part in (
            f"provider {self.provider!r}" if self.provider else "",
            f"model {self.model!r}" if self.model else "",
        ) if part)
        text = f"{where}: {self.message}" if where else self.message
        if self.status is not None:
            text = f"{text} (HTTP {self.status})"
        return f"{text}. {self.hint}" if self.hint else text

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments defeat Exception's default pickling; results cross process boundaries (Ray).
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[LLMError], args: tuple[Any, ...], state: dict[str, Any]) -> LLMError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ProviderConfigError(LLMError, ConfigError):
    """A provider that cannot be set up: unknown name, bad field, missing key variable."""

    default_hint = "Fix the [providers.NAME] table in config.toml or its PARTYFLOW_PROVIDERS__ overrides"


class MissingExtraError(ProviderConfigError):
    """A provider type whose optional dependencies are not installed."""

    def __init__(self, extra: str, missing: str, *, provider: str | None = None, model: str | None = None) -> None:
        self.extra = extra
        super().__init__(f"this provider type needs {missing!r}, which is not installed", provider=provider,
                         model=model, hint=f"Install it with: pip install 'partyflow[{extra}]'")


class AuthError(LLMError):
    """The provider rejected the credentials (401/403)."""

    default_hint = "Check that the API key variable named in api_key_env holds a valid key for this provider"


class ModelNotFoundError(LLMError):
    """The model (or the endpoint) does not exist at this provider (404)."""

    default_hint = "Check the model name (list them with `partyflow models list`) and the provider's base_url"


class RateLimitError(LLMError):
    """The provider throttled us (429) and retries did not get through; `retry_after` is its advice, in seconds."""

    retryable = True
    default_hint = "Wait and try again, lower the concurrency, or raise the plan's limits with the provider"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class RequestTimeoutError(LLMError):
    """No (complete) answer within the configured timeout."""

    retryable = True
    default_hint = "Raise the provider's timeout in config.toml, or check that the server is not overloaded"


class ProviderConnectionError(LLMError):
    """The server could not be reached, or dropped the connection (DNS, refused, reset)."""

    retryable = True
    default_hint = "Check the provider's base_url and that the server is running and reachable"


class ServerError(LLMError):
    """The provider failed on its side (5xx)."""

    retryable = True
    default_hint = "The provider had an internal error; try again later or use another provider"


class InvalidRequestError(LLMError):
    """The provider refused the request as malformed (400/422) for a reason other than context size."""

    default_hint = "Check the request's parameters (tools, response format, sampling settings) for this model"


class ContextOverflowError(InvalidRequestError):
    """The prompt (plus the requested completion) does not fit the model's context window."""

    default_hint = "Shorten the conversation or the documents, lower max_tokens, or use a longer-context model"


class BadResponseError(LLMError):
    """The provider answered with something we cannot use: malformed JSON, a missing field, invalid output."""

    default_hint = "The server may not speak the OpenAI protocol at this base_url, or the model misbehaved"


class BudgetExceededError(LLMError):
    """A configured budget is spent: the call was refused before it was sent (nothing was billed)."""

    default_hint = "Raise or remove the budget in config.toml ([[budgets]]), wait for the next period, or use " \
                   "another provider"


class RouterExhaustedError(LLMError):
    """Every member of a router failed or was unavailable; `attempts` lists (member, why) in the order tried.

    Retryable, so a router that has this one as a member fails over to its next member."""

    retryable = True
    default_hint = "See why each member failed; fix or add members, or wait for cooldowns to end"

    def __init__(self, message: str, *, attempts: tuple[tuple[str, str], ...] = (), **kwargs: Any) -> None:
        self.attempts = attempts
        super().__init__(message, **kwargs)
