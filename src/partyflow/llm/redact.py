"""Keeping API keys out of messages, reprs and logs.

Two nets: the secrets we know (a provider's key, read from its environment variable) are replaced wherever they
appear, and text that merely looks like a credential (`Bearer ...`, `sk-...`, `api_key=...`) is masked too, so a
key echoed back by a server or pasted into a URL is caught even when we did not load it ourselves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "[REDACTED]"
MIN_SECRET_LENGTH = 4  # shorter "secrets" (placeholders like "x") would mangle ordinary text

_PATTERNS = (
    re.compile(r"(?i)(\bbearer\s+)[^\s\"',;]+"),
    re.compile(r"(?i)(\b(?:api[_-]?key|(?:access[_-]?)?token|secret|password)[\"']?\s*[:=]\s*[\"']?)"
               r"[^\s\"',;&]+"),
    re.compile(r"()\b(?:sk|pk|rk|xai|gsk)-[A-Za-z0-9_\-]{12,}"),
    re.compile(r"()\bAIza[0-9A-Za-z_\-]{20,}"),
    re.compile(r"()\bhf_[A-Za-z0-9]{20,}"),
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every known secret and every credential-looking token replaced by `[REDACTED]`."""
    for secret in sorted((s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record and redacts it before any handler sees it.

    Attach it to a handler (or to the `partyflow` logger) with the keys a process has loaded.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self._secrets)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self._secrets)
            record.exc_info = None
        return True
