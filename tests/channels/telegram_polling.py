"""A loopback Telegram Bot API with long polling: getUpdates holds the request until an update is queued (or a
short timeout passes), and confirms updates below the `offset` it is asked for, as the Bot API does."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from tests.channels.platforms import PlatformAPI

HOLD_S = 1.0  # how long an empty getUpdates is held open (Telegram holds up to the client's `timeout`)


@dataclass
class TelegramAPI(PlatformAPI):
    token: str = ""
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _arrived: asyncio.Event | None = None

    def answer(self, request: web.Request, path: str, body: dict[str, Any]) -> Any:
        if not path.startswith("/bot"):
            return None
        if not path.startswith(f"/bot{self.token}/"):
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        if path.endswith("/getUpdates"):
            return self._get_updates(int(body.get("offset") or 0))
        return None

    async def _get_updates(self, offset: int) -> web.Response:
        if self._arrived is None:
            self._arrived = asyncio.Event()
        self._updates = [u for u in self._updates if u["update_id"] >= offset]  # confirmed ones are forgotten
        if not self._updates:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), HOLD_S)
            except TimeoutError:
                pass
        return web.json_response({"ok": True, "result": list(self._updates)})

    def push(self, update: dict[str, Any]) -> None:
        """Queue an update, from the test's thread."""
        async def add() -> None:
            self._updates.append(update)
            if self._arrived is not None:
                self._arrived.set()

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(add(), self._loop).result(10)
