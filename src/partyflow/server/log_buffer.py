"""The server's recent log lines, for the editor's error report and its Console panel (ComfyUI's /internal/logs).

A logging handler keeps the last `capacity` records (secrets redacted with the same filter the log output uses) and,
for WebSocket clients that subscribed, forwards new lines as ComfyUI's `logs` messages. It is attached to the root
logger only while the app runs, so two apps in one process (tests) each see their own lifetime's lines.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from partyflow.server.logs import RedactSecrets

DEFAULT_CAPACITY = 1000
TERMINAL_SIZE = {"cols": 120, "rows": 40}  # what ComfyUI reports when it has no terminal; the panel only reads it


class LogBuffer(logging.Handler):
    def __init__(self, send: Callable[[dict[str, Any], str], None], *, secrets: Iterable[str] = (),
                 capacity: int = DEFAULT_CAPACITY) -> None:
        super().__init__(level=logging.INFO)
        self._entries: deque[dict[str, str]] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._send = send
        self._redact = RedactSecrets(secrets)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.subscribers: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- lifecycle ----------------------------------------------------------------------------------------------

    def install(self) -> None:
        self._loop = asyncio.get_running_loop()
        logging.getLogger().addHandler(self)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self)
        self._loop = None

    # ---- logging.Handler ------------------------------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self._redact.redact(self.format(record))
        except Exception:  # a record whose arguments do not format: logging must never raise into the caller
            self.handleError(record)
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        entry = {"t": stamp, "m": text + "\n"}
        with self._lock:
            self._entries.append(entry)
        loop = self._loop
        if self.subscribers and loop is not None:
            try:
                loop.call_soon_threadsafe(self._forward, entry)
            except RuntimeError:  # the loop closed while shutting down
                pass

    def _forward(self, entry: dict[str, str]) -> None:
        message = {"type": "logs", "data": {"entries": [entry], "size": TERMINAL_SIZE}}
        for client_id in list(self.subscribers):
            self._send(message, client_id)

    # ---- reading ----------------------------------------------------------------------------------------------

    def entries(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self._entries)

    def text(self) -> str:
        """ComfyUI's GET /internal/logs: every line as one string, each as "<time> - <message>"."""
        return "".join(f"{e['t']} - {e['m']}" for e in self.entries())
