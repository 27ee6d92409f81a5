"""Supervising the Feishu/Lark long connection (`mode = "long_connection"`), which runs in a child process.

lark-oapi's websocket client cannot run inside partyflow's event loop (see `feishu_ws_child`), so each
long-connection channel starts `feishu_ws_child.py` with this Python, reads the events it forwards as JSON
lines and hands them to the same path as the HTTP event subscription (dedup by event id, allow-lists,
memory sessions, answers through the Open API). The child is stopped by closing its stdin (terminated, then
killed, if it lingers); a child that exits on its own is reported and restarted with backoff, except when
Feishu refused the app credentials, which ends this channel (reported) and leaves the others running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from partyflow.channels.config import ChannelConfig
from partyflow.channels.feishu_ws_child import EXIT_REFUSED

logger = logging.getLogger("partyflow.channels")

MAX_EVENT_LINE = 8 * 1024 * 1024  # one forwarded event (Feishu messages are far smaller)
FIRST_BACKOFF_S, MAX_BACKOFF_S = 1.0, 60.0
STABLE_AFTER_S = 60.0  # a child that ran this long starts the backoff afresh when it dies
STOP_GRACE_S = 5.0


class CredentialsRefused(RuntimeError):
    """Feishu refused the app id/secret: restarting the child would not help."""


class LongConnection:
    """One channel's child process, kept running until `stop`."""

    def __init__(self, config: ChannelConfig, domain: str, on_event: Callable[[dict[str, Any]], None],
                 environ: Mapping[str, str] = os.environ) -> None:
        self.config, self.domain, self.on_event = config, domain, on_event
        self._environ = environ
        self._secrets = [v for v in (config.optional_secret("app_secret_env", environ),) if v]
        self.process: asyncio.subprocess.Process | None = None  # the running child (tests, diagnostics)
        self.restarts = 0

    async def run(self, stop: asyncio.Event) -> None:
        backoff = FIRST_BACKOFF_S
        while not stop.is_set():
            started = time.monotonic()
            code, last_error = await self._once(stop)
            if stop.is_set():
                return
            if code == EXIT_REFUSED:
                raise CredentialsRefused(last_error or "Feishu refused the app credentials")
            if time.monotonic() - started >= STABLE_AFTER_S:
                backoff = FIRST_BACKOFF_S
            logger.error("channel %s: the Feishu long connection process exited with status %s (%s); restarting "
                         "in %.0f s", self.config.name, code, last_error or "no message", backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            self.restarts += 1

    def _command(self) -> list[str]:
        """The child runs as a script (`-P`: its folder is not put on the path), so that it imports lark-oapi
        and nothing of partyflow (whose package imports would only slow its start)."""
        credentials = self.config.credentials
        return [sys.executable, "-P", str(Path(__file__).with_name("feishu_ws_child.py")), "--app-id-env",
                credentials["app_id_env"], "--app-secret-env", credentials["app_secret_env"], "--domain", self.domain]

    async def _once(self, stop: asyncio.Event) -> tuple[int | None, str]:
        """Run one child until it exits or `stop`; its exit status and last line on stderr."""
        process = self.process = await asyncio.create_subprocess_exec(
            *self._command(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=dict(self._environ), limit=MAX_EVENT_LINE)
        logger.info("channel %s: Feishu long connection process %s started", self.config.name, process.pid)
        errors: list[str] = []
        pumps = [asyncio.create_task(self._events(process)), asyncio.create_task(self._log(process, errors))]
        halt = asyncio.create_task(stop.wait())
        exited = asyncio.create_task(process.wait())
        try:
            await asyncio.wait({halt, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            halt.cancel()
            if process.returncode is None:
                await self._end(process)
            await asyncio.gather(*pumps, return_exceptions=True)
            await asyncio.gather(exited, halt, return_exceptions=True)
            self.process = None
        return process.returncode, errors[-1] if errors else ""

    async def _end(self, process: asyncio.subprocess.Process) -> None:
        """Close its stdin (the child exits at end of file); terminate, then kill, if it does not."""
        if process.stdin is not None:
            process.stdin.close()
        for signal_it in (None, process.terminate, process.kill):
            if signal_it is not None:
                with contextlib.suppress(ProcessLookupError):
                    signal_it()
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_S)
                return
            except TimeoutError:
                continue

    async def _events(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            try:
                line = await process.stdout.readline()
            except ValueError:  # a line over MAX_EVENT_LINE: the stream is out of step, start afresh
                logger.error("channel %s: the Feishu long connection sent an oversized event; restarting it",
                             self.config.name)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                return
            if not line:
                return
            try:
                record = json.loads(line)
            except ValueError:
                logger.warning("channel %s: ignored a malformed line from the long connection", self.config.name)
                continue
            event = record.get("event") if isinstance(record, dict) else None
            if isinstance(event, dict):
                try:
                    self.on_event(event)
                except Exception:  # one bad event must not stop the channel
                    logger.exception("channel %s: handling a Feishu event failed", self.config.name)

    async def _log(self, process: asyncio.subprocess.Process, errors: list[str]) -> None:
        """The child's (and lark-oapi's) messages into our log, with the app secret masked."""
        assert process.stderr is not None
        while True:
            try:
                line = await process.stderr.readline()
            except ValueError:
                continue
            if not line:
                return
            text = self.redact(line.decode("utf-8", "replace").rstrip())
            if text:
                errors[:] = [*errors[-9:], text]
                logger.warning("channel %s: %s", self.config.name, text)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
