"""A loopback Discord: the REST API under /api/v10 and the gateway websocket at /gateway, speaking Discord's wire
format (opcodes, dispatch payloads, zstd-stream / zlib-stream transport compression, rate-limit answers) so that
discord.py itself connects to it."""

from __future__ import annotations

import asyncio
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from tests.channels.platforms import PlatformAPI

BOT_ID, APP_ID = "1100000000000000001", "1100000000000000001"
BOT_USER = {"id": BOT_ID, "username": "partybot", "discriminator": "0", "global_name": None, "avatar": None,
            "bot": True, "flags": 0, "verified": True, "mfa_enabled": False}
HELLO, IDENTIFY, HEARTBEAT, HEARTBEAT_ACK, DISPATCH, RESUME = 10, 2, 1, 11, 0, 6


def _json(data: Any, status: int = 200) -> web.Response:
    """Discord's JSON answers carry exactly `Content-Type: application/json` (discord.py compares it verbatim)."""
    return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"})


class _Compressor:
    """Discord's transport compression: one compression context for the whole connection, each message flushed."""

    def __init__(self, kind: str | None) -> None:
        self.kind = kind
        if kind == "zstd-stream":
            import zstandard

            self._zstd = zstandard.ZstdCompressor().compressobj()
        elif kind == "zlib-stream":
            self._zlib = zlib.compressobj()

    def pack(self, text: str) -> bytes | str:
        if self.kind == "zstd-stream":
            import zstandard

            return self._zstd.compress(text.encode()) + self._zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        if self.kind == "zlib-stream":
            return self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        return text


@dataclass
class DiscordAPI(PlatformAPI):
    token: str = ""
    heartbeat_ms: int = 45_000
    _sockets: list[tuple[web.WebSocketResponse, _Compressor, list[int]]] = field(default_factory=list)

    def install(self, app: web.Application) -> None:
        app.router.add_get("/gateway", self._gateway)
        super().install(app)

    def answer(self, request: web.Request, path: str, body: dict[str, Any]) -> web.StreamResponse | None:
        if not path.startswith("/api/v10/"):
            return None
        if request.headers.get("Authorization") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        route = path[len("/api/v10"):]
        if route == "/users/@me":
            return _json(BOT_USER)
        if route == "/oauth2/applications/@me":
            return _json({"id": APP_ID, "name": "partybot", "icon": None, "description": "",
                                      "bot_public": True, "bot_require_code_grant": False, "owner": BOT_USER,
                                      "verify_key": "0" * 64, "flags": 0, "team": None, "summary": ""})
        if route == "/gateway/bot":
            ws = self.url.replace("http://", "ws://") + "/gateway"
            return _json({"url": ws, "shards": 1, "session_start_limit": {
                "total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}})
        if route.endswith("/typing"):
            return web.Response(status=204)
        if route.startswith("/channels/") and route.endswith("/messages"):
            payload = json.loads(body.get("payload_json", "{}")) if "payload_json" in body else body
            channel = route.split("/")[2]
            attachments = [{"id": str(1300 + i), "filename": a.get("filename", f"file{i}"), "size": 1,
                            "url": f"{self.url}/attachments/{channel}/{i}", "proxy_url": f"{self.url}/p/{i}"}
                           for i, a in enumerate(payload.get("attachments") or [])]
            return _json({
                "id": "1200000000000000001", "channel_id": channel, "type": 0, "author": BOT_USER,
                "content": payload.get("content") or "", "timestamp": "2026-12-03T12:00:00.000000+00:00",
                "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
                "mention_roles": [], "attachments": attachments, "embeds": [], "pinned": False, "flags": 0,
                "components": []})
        return _json({"message": "404: Not Found", "code": 0}, status=404)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        query = dict(request.query)
        self.record("gateway:connect", query)
        compressor, sequence = _Compressor(query.get("compress")), [0]
        await self._send(ws, compressor, sequence, HELLO, {"heartbeat_interval": self.heartbeat_ms})
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                continue
            payload = json.loads(frame.data)
            op, data = payload.get("op"), payload.get("d")
            self.record(f"gateway:op{op}", payload)
            if op == IDENTIFY:
                if data.get("token") != self.token:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                await self._send(ws, compressor, sequence, DISPATCH, {
                    "v": 10, "user": BOT_USER, "guilds": [], "session_id": "gateway-session-1",
                    "resume_gateway_url": self.url.replace("http://", "ws://") + "/gateway",
                    "shard": data.get("shard", [0, 1]), "application": {"id": APP_ID, "flags": 0},
                    "private_channels": [], "relationships": []}, "READY")
                self._sockets.append((ws, compressor, sequence))
            elif op == HEARTBEAT:
                await self._send(ws, compressor, sequence, HEARTBEAT_ACK, None)
        return ws

    @staticmethod
    async def _send(ws: web.WebSocketResponse, compressor: _Compressor, sequence: list[int], op: int, data: Any,
                    event: str | None = None) -> None:
        if op == DISPATCH:
            sequence[0] += 1
        frame = compressor.pack(json.dumps({"op": op, "d": data, "s": sequence[0] if op == DISPATCH else None,
                                            "t": event}))
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a dispatch (op 0) to every identified connection, from the test's thread."""
        async def send() -> None:
            for ws, compressor, sequence in self._sockets:
                await self._send(ws, compressor, sequence, DISPATCH, data, event)

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(send(), self._loop).result(10)

    def request_heartbeat(self) -> None:
        """op 1 from the server: the client must heartbeat at once (and gets an ACK)."""
        async def send() -> None:
            for ws, compressor, sequence in self._sockets:
                await self._send(ws, compressor, sequence, HEARTBEAT, None)

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(send(), self._loop).result(10)


def message_create(message_id: int, text: str, *, channel: str, guild: str | None, user: str = "900000000000000009",
                   bot: bool = False) -> dict[str, Any]:
    """A MESSAGE_CREATE dispatch payload as Discord sends it (guild messages carry guild_id and member)."""
    payload: dict[str, Any] = {
        "id": str(message_id), "channel_id": channel, "type": 0, "content": text,
        "author": {"id": user, "username": "ada", "discriminator": "0", "global_name": "Ada", "avatar": None,
                   **({"bot": True} if bot else {})},
        "timestamp": "2026-12-03T12:00:00.000000+00:00", "edited_timestamp": None, "tts": False,
        "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
        "pinned": False, "flags": 0, "components": [], "nonce": str(message_id)}
    if guild is not None:
        payload["guild_id"] = guild
        payload["member"] = {"roles": [], "joined_at": "2026-01-01T00:00:00.000000+00:00", "deaf": False,
                             "mute": False, "flags": 0}
    return payload
