"""A loopback Slack for Socket Mode: the Web API under /slack/ (apps.connections.open with the app-level token,
chat.postMessage, the files upload v2 flow) and the Socket Mode websocket (hello, envelopes with envelope_id,
redeliveries with retry_attempt, acknowledgements), as slack_sdk's SocketModeClient expects them."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from tests.channels.platforms import PlatformAPI


@dataclass
class SlackAPI(PlatformAPI):
    app_token: str = ""
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _uploads: dict[str, str] = field(default_factory=dict)  # file id -> filename

    def install(self, app: web.Application) -> None:
        app.router.add_get("/slack-socket", self._socket)
        super().install(app)

    def answer(self, request: web.Request, path: str, body: dict[str, Any]) -> web.StreamResponse | None:
        if path == "/slack/apps.connections.open":
            if request.headers.get("Authorization") != f"Bearer {self.app_token}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
            return web.json_response({"ok": True, "url": self.url.replace("http://", "ws://") + "/slack-socket"})
        if path == "/slack/files.getUploadURLExternal":
            file_id = f"F{len(self._uploads) + 1:05d}"
            self._uploads[file_id] = body.get("filename", "")
            return web.json_response({"ok": True, "file_id": file_id,
                                      "upload_url": f"{self.url}/slack-upload/{file_id}"})
        if path.startswith("/slack-upload/"):
            return web.Response(text=f"OK - {request.content_length}")
        if path == "/slack/files.completeUploadExternal":
            files = json.loads(body.get("files", "[]"))
            return web.json_response({"ok": True, "files": [{"id": f["id"], "name": self._uploads.get(f["id"]),
                                                             "title": f.get("title")} for f in files]})
        return None

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0PARTY"},
                            "debug_info": {"host": "applink-loopback", "approximate_connection_time": 18060}})
        self._sockets.append(ws)
        self.record("socket:connect", dict(request.query))
        async for frame in ws:
            if frame.type is WSMsgType.TEXT:
                self.record("socket:ack", json.loads(frame.data))
        return ws

    def deliver(self, envelope_id: str, event: dict[str, Any], retry_attempt: int = 0) -> None:
        """An events_api envelope, as Slack pushes it (again, with retry_attempt, when not acknowledged)."""
        envelope = {"envelope_id": envelope_id, "type": "events_api", "accepts_response_payload": False,
                    "retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else "",
                    "payload": event}

        async def send() -> None:
            for ws in self._sockets:
                await ws.send_json(envelope)

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(send(), self._loop).result(10)

