"""Real servers on 127.0.0.1 for the server tests: each runs `create_app` on its own thread and event loop, so
tests talk to it over TCP exactly as external clients do; plus small helpers for their messages."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from partyflow import Engine
from partyflow.server import ServerConfig, create_app
from partyflow.server.runner import bound_url

PACKS = Path(__file__).parent / "packs"
T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def hello_prompt(text: str = "hello") -> dict[str, Any]:
    """TextValue -> DisplayText: the smallest workflow of our core nodes with a visible result."""
    return {"1": {"class_type": "TextValue", "inputs": {"value": text}},
            "2": {"class_type": "DisplayText", "inputs": {"text": ["1", 0]}}}


def make_home(root: Path) -> Path:
    home = root / "home"
    shutil.copytree(PACKS / "gatepack", home / "custom_nodes" / "gatepack",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return home


@dataclass
class LiveServer:
    url: str
    engine: Engine
    app: web.Application
    config: ServerConfig
    _loop: asyncio.AbstractEventLoop
    _stop: asyncio.Event
    _thread: threading.Thread
    headers: dict[str, str] = field(default_factory=dict)

    def ws_url(self, client_id: str | None = None, **query: str) -> str:
        params = {**({"clientId": client_id} if client_id else {}), **query}
        suffix = "&".join(f"{k}={v}" for k, v in params.items())
        return self.url.replace("http://", "ws://") + "/ws" + (f"?{suffix}" if suffix else "")

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)

    def session(self, **kwargs: Any) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(self.url, headers=self.headers, **kwargs)


def start_server(engine: Engine, config: ServerConfig,
                 extensions: tuple[Callable[[web.Application], None], ...] = ()) -> LiveServer:
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        try:
            app = create_app(engine, config, extensions=extensions)
            runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
            await runner.setup()
            await web.TCPSite(runner, config.host, config.port).start()
        except BaseException as exc:
            state["error"] = exc
            ready.set()
            raise
        state.update(url=bound_url(runner, config), app=app, stop=asyncio.Event(),
                     loop=asyncio.get_running_loop())
        ready.set()
        try:
            await state["stop"].wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="test-server", daemon=True)
    thread.start()
    assert ready.wait(30), "server did not start"
    if "error" in state:
        raise state["error"]
    return LiveServer(state["url"], engine, state["app"], config, state["loop"], state["stop"], thread)


async def receive_until(ws: aiohttp.ClientWebSocketResponse, done: Callable[[dict[str, Any]], bool],
                        timeout: float = 20) -> list[dict[str, Any]]:
    """Every JSON message up to and including the first for which `done` is true."""
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                seen = [m["type"] for m in messages[-10:]]
                raise AssertionError(f"socket ended ({msg.type}) before the expected message; last: {seen}")
            message = json.loads(msg.data)
            messages.append(message)
            if done(message):
                return messages


class Tracebacks(logging.Handler):
    """Collects every log record that carries a traceback or is an error, from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.seen.append(record)


def finished(prompt_id: str) -> Callable[[dict[str, Any]], bool]:
    """The `executing` message with node null that ends a prompt."""
    return lambda m: m["type"] == "executing" and m["data"].get("node") is None \
        and m["data"].get("prompt_id") == prompt_id
