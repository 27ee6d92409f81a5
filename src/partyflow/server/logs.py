"""Logging for the server: text or one JSON object per line, with secrets removed before anything is written."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_QUERY_TOKEN = re.compile(r"(?i)([?&]token=)[^&\s\"]+")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


class RedactSecrets(logging.Filter):
    """Replaces the API token (and anything shaped like one in a URL or header) with `***` in every record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return _BEARER.sub(r"\1***", _QUERY_TOKEN.sub(r"\1***", text))

    def filter(self, record: logging.LogRecord) -> bool:
        message = self.redact(record.getMessage())
        record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields, exception text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(log_format: str, *, secrets: Iterable[str] = (), level: int = logging.INFO) -> logging.Handler:
    """Route the root logger to stderr in `log_format` ('text' or 'json'); returns the handler installed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactSecrets(secrets))
    handler.setFormatter(JsonFormatter() if log_format == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


class MalformedRequests(logging.Filter):
    """aiohttp logs a request it cannot even parse (a request line over 8 KiB, a broken header) as an error with
    a traceback, although it answers 400 and the fault is the client's. This turns such a record into one warning
    line without the traceback; everything else passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 400) < 500:
            record.msg = "refused a malformed HTTP request from %s: %s"
            record.args = (*(record.args if isinstance(record.args, tuple) else ())[:1],
                           type(exc).__name__)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_malformed_requests() -> None:
    """Attach `MalformedRequests` to aiohttp's server logger once per process (idempotent)."""
    server_logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequests) for f in server_logger.filters):
        server_logger.addFilter(MalformedRequests())
