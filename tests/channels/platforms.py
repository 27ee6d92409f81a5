"""Loopback stand-ins for the chat platforms' APIs, speaking their wire formats (what the official SDKs send and
expect), recording every call so tests can wait for the answers a channel posts."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)  # field -> (filename, type, bytes)
    method: str = "POST"
    status: int = 200  # what the stand-in answered (refused calls are recorded too)


@dataclass
class PlatformAPI:
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    rate_limit_once: set[str] = field(default_factory=set)  # paths that answer 429 the first time
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None

    def wait_for(self, path_part: str, count: int = 1, timeout: float = 30) -> list[Call]:
        with self._changed:
            ok = self._changed.wait_for(lambda: len(self.matching(path_part)) >= count, timeout)
        assert ok, f"expected {count} call(s) to {path_part}, got {[c.path for c in self.calls]}"
        return self.matching(path_part)

    def matching(self, path_part: str) -> list[Call]:
        return [c for c in self.calls if path_part in c.path]

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        files: dict[str, tuple[str, str, bytes]] = {}
        if request.content_type == "application/json":
            body = json.loads(raw or b"{}")
        elif request.content_type == "multipart/form-data":
            body, files = _multipart(request.headers["Content-Type"], raw)
        elif request.content_type in ("application/x-www-form-urlencoded", "") or not raw:
            body = _form(raw) if raw else {}
        else:
            body, files["body"] = {}, ("", request.content_type, raw)  # a raw upload (Slack's upload URL)
        if isinstance(body, dict) and request.query:  # Web API arguments may come in the query string
            body = {**dict(request.query), **body}
        path = request.path
        if path in self.rate_limit_once:
            self.rate_limit_once.discard(path)
            return _rate_limited(path)
        answer = self.answer(request, path, body)
        if asyncio.iscoroutine(answer):
            answer = await answer
        with self._changed:
            self.calls.append(Call(path, dict(request.headers), body, files, request.method,
                                   200 if answer is None else answer.status))
            self._changed.notify_all()
        return answer if answer is not None else web.json_response(_answer(path, body))

    def answer(self, request: web.Request, path: str, body: dict[str, Any]) -> Any:
        """A platform-specific answer (subclasses; may be a coroutine); None for the shared JSON answers below."""
        return None

    def record(self, path: str, body: dict[str, Any]) -> None:
        """Record something that did not come over HTTP (a websocket frame)."""
        with self._changed:
            self.calls.append(Call(path, {}, body, {}, "WS"))
            self._changed.notify_all()

    def install(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    def start(self) -> PlatformAPI:
        ready = threading.Event()

        async def main() -> None:
            app = web.Application(client_max_size=64 * 1024 * 1024)
            self.install(app)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url, self._loop, self._stop = f"http://127.0.0.1:{port}", asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await self._stop.wait()
            await runner.cleanup()

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        self._thread.start()
        assert ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)


def _multipart(content_type: str, raw: bytes) -> tuple[dict[str, Any], dict[str, tuple[str, str, bytes]]]:
    """A multipart/form-data body: its plain fields, and its files as (filename, content type, bytes)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields: dict[str, Any] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[str(name)] = (filename, part.get_content_type(), data)
        else:
            fields[str(name)] = data.decode()
    return fields, files


def _form(raw: bytes) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(raw.decode()))


def _rate_limited(path: str) -> web.Response:
    if path.startswith("/api/v10/"):  # Discord: the JSON body's retry_after (seconds) and the bucket headers
        body = json.dumps({"message": "You are being rate limited.", "retry_after": 0.05, "global": False})
        return web.Response(body=body.encode(), status=429, headers={  # Via: Discord's edge (not a Cloudflare ban)
            "Content-Type": "application/json", "Retry-After": "1", "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "0.05", "X-RateLimit-Bucket": "b7f3c1",
            "X-RateLimit-Scope": "user", "Via": "1.1 google"})
    if path.startswith("/slack/"):
        return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "0"})
    if path.startswith("/bot"):
        return web.json_response({"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 0",
                                  "parameters": {"retry_after": 0}}, status=429)
    return web.json_response({}, status=429, headers={"Retry-After": "0"})


def _answer(path: str, body: dict[str, Any]) -> dict[str, Any]:
    if path.startswith("/slack/"):
        return {"ok": True, "channel": body.get("channel"), "ts": "1700000000.000200",
                "message": {"text": body.get("text"), "type": "message"}}
    if path.startswith("/bot"):
        method = path.rsplit("/", 1)[-1]
        if method == "getMe":
            return {"ok": True, "result": {"id": 42, "is_bot": True, "first_name": "party", "username": "partybot"}}
        if method in ("sendMessage", "sendPhoto", "sendAudio"):
            return {"ok": True, "result": {"message_id": 7, "date": 1700000000, "text": body.get("text"),
                                           "chat": {"id": int(body.get("chat_id", 0)), "type": "private"}}}
        return {"ok": True, "result": True}
    if path.endswith("/tenant_access_token/internal"):
        return {"code": 0, "msg": "ok", "tenant_access_token": "t-test", "expire": 7200}
    if path == "/open-apis/im/v1/images":
        return {"code": 0, "msg": "success", "data": {"image_key": "img_v2_0001"}}
    if path == "/open-apis/im/v1/files":
        return {"code": 0, "msg": "success", "data": {"file_key": "file_v2_0001"}}
    if path.startswith("/open-apis/im/v1/messages"):
        return {"code": 0, "msg": "success", "data": {"message_id": "om_1", "chat_id": body.get("receive_id")}}
    return {"ok": True}
