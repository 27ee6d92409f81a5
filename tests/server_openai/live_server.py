"""An aiohttp app served on 127.0.0.1 from a background thread, so synchronous clients (openai, Playwright)
can talk to it from the test thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future

from aiohttp import web


class LiveServer:
    """`with LiveServer(make_app) as server: server.url` — the app is built and run on the server's own loop."""

    def __init__(self, make_app: Callable[[], web.Application]) -> None:
        self._make_app = make_app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="live-server", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, coro_factory: Callable[[], object]) -> object:
        """Run a coroutine on the server's loop and wait for its result."""
        future: Future[object] = asyncio.run_coroutine_threadsafe(coro_factory(), self._loop)  # type: ignore[arg-type]
        return future.result(timeout=60)

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._make_app(), handle_signals=False, shutdown_timeout=2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self) -> LiveServer:
        self._thread.start()
        self.call(self._start)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self._stop)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
