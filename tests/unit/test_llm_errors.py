import logging
import pickle
import string

from hypothesis import given
from hypothesis import strategies as st

from partyflow.config import ConfigError
from partyflow.llm.errors import (
    AuthError,
    LLMError,
    MissingExtraError,
    ProviderConfigError,
    RateLimitError,
    RequestTimeoutError,
)
from partyflow.llm.redact import MASK, RedactingFilter, redact

KEY = "sk-live-0123456789abcdefXYZ"


def test_message_names_provider_model_status_and_what_to_do():
    error = AuthError("the server refused the credentials", provider="deepseek", model="deepseek-chat", status=401)
    text = str(error)
    assert text.startswith("provider 'deepseek', model 'deepseek-chat': the server refused the credentials")
    assert "(HTTP 401)" in text and "api_key_env" in text


def test_known_secrets_are_redacted_from_message_hint_and_repr():
    error = LLMError(f"server said: bad key {KEY}", hint=f"not {KEY}", provider="p", secrets=[KEY])
    for text in (str(error), repr(error), error.message, error.hint):
        assert KEY not in text
        assert MASK in text


def test_credential_shapes_are_redacted_even_when_unknown():
    text = redact("Authorization: Bearer abc.def-123 url?api_key=zzz9 token: 'qqq' key sk-abcdefghijklmnop1234")
    assert "abc.def-123" not in text and "zzz9" not in text and "qqq" not in text
    assert "sk-abcdefghijklmnop1234" not in text
    assert redact("a normal sentence about keys and tokens") == "a normal sentence about keys and tokens"


@given(secret=st.text(string.ascii_lowercase + string.digits + "-_", min_size=4, max_size=40),
       before=st.text(max_size=30), after=st.text(max_size=30))
def test_a_known_secret_never_survives_redaction(secret, before, after):
    assert secret not in redact(before + secret + after + secret, [secret])


def test_errors_pickle_with_their_fields():
    error = RateLimitError("slow down", retry_after=2.5, provider="p", model="m", status=429)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimitError
    assert (str(copy), copy.retry_after, copy.provider, copy.status) == (str(error), 2.5, "p", 429)


def test_retryable_flags_and_hierarchy():
    assert RateLimitError("x").retryable and RequestTimeoutError("x").retryable
    assert not AuthError("x").retryable
    assert isinstance(ProviderConfigError("x"), ConfigError)  # callers of the config layer catch these too
    missing = MissingExtraError("local", "torch", provider="tiny")
    assert "pip install 'partyflow[local]'" in str(missing)


def test_logging_filter_redacts_messages_arguments_and_tracebacks(caplog):
    logger = logging.getLogger("partyflow.test.redaction")
    redacting = RedactingFilter([KEY])
    caplog.handler.addFilter(redacting)
    try:
        with caplog.at_level(logging.DEBUG, logger=logger.name):
            logger.info("calling with %s", KEY)
            try:
                raise ValueError(f"boom {KEY}")
            except ValueError:
                logger.exception("failed")
    finally:
        caplog.handler.removeFilter(redacting)
    assert "calling with" in caplog.text and "boom" in caplog.text
    assert KEY not in caplog.text
