"""A loopback Feishu for the long connection, as lark-oapi's `lark_oapi.ws.Client` expects it: the Open API
(tenant_access_token/internal, im/v1/messages), `POST /callback/ws/endpoint` (AppID/AppSecret in, the websocket URL
with device_id and service_id plus the ClientConfig out), and the websocket speaking pbbp2 `Frame`s: the client's
ping control frames are answered with pong (carrying the ClientConfig), events go out as data frames (headers
type=event, message_id, trace_id, sum, seq; the event JSON as payload, split into `sum` parts if asked) and the
client's acknowledgement frames (the same headers plus biz_rt, payload `{"code": 200}`) are recorded."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from lark_oapi.ws.pb.pbbp2_pb2 import Frame
from tests.channels.platforms import PlatformAPI

CONTROL, DATA = 0, 1  # Frame.method
SERVICE_ID = 33554678
CLIENT_CONFIG = {"ReconnectCount": -1, "ReconnectInterval": 1, "ReconnectNonce": 0, "PingInterval": 120}


def _headers(frame: Any) -> dict[str, str]:
    return {h.key: h.value for h in frame.headers}


@dataclass
class FeishuAPI(PlatformAPI):
    app_id: str = ""
    app_secret: str = ""
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _connections: int = 0
    _seq: int = 0

    def install(self, app: web.Application) -> None:
        app.router.add_get("/ws/v2", self._socket)
        super().install(app)

    def answer(self, request: web.Request, path: str, body: dict[str, Any]) -> web.StreamResponse | None:
        if path == "/callback/ws/endpoint":
            if body.get("AppID") != self.app_id or body.get("AppSecret") != self.app_secret:
                return web.json_response({"code": 10014, "msg": "app secret invalid", "data": None})
            self._connections += 1
            url = (self.url.replace("http://", "ws://") + f"/ws/v2?fpid=493&aid=552564&device_id="
                   f"7402{self._connections:06d}&access_key=ak-{self._connections}&service_id={SERVICE_ID}"
                   f"&ticket=t-{self._connections}")
            return web.json_response({"code": 0, "msg": "ok", "data": {"URL": url, "ClientConfig": CLIENT_CONFIG}})
        if path.endswith("/tenant_access_token/internal"):
            return self._tenant_token(request, body)
        return None

    async def _tenant_token(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        """lark-oapi posts this JSON body without a Content-Type: read it as JSON whatever the header says."""
        sent = json.loads(await request.read() or b"{}")
        body.update(sent)  # recorded as JSON
        if sent.get("app_id") != self.app_id or sent.get("app_secret") != self.app_secret:
            return web.json_response({"code": 10014, "msg": "app secret invalid"})
        return web.json_response({"code": 0, "msg": "ok", "tenant_access_token": "t-test", "expire": 7200})

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        self.record("ws:connect", dict(request.query))
        async for message in ws:
            if message.type is not WSMsgType.BINARY:
                self.record("ws:text", {"data": message.data})
                continue
            frame = Frame()
            frame.ParseFromString(message.data)
            headers = _headers(frame)
            if frame.method == CONTROL and headers.get("type") == "ping":
                self.record("ws:ping", {"service": frame.service, "headers": headers})
                pong = Frame(SeqID=0, LogID=0, service=frame.service, method=CONTROL,
                             payload=json.dumps(CLIENT_CONFIG).encode())
                pong.headers.add(key="type", value="pong")
                await ws.send_bytes(pong.SerializeToString())
            elif frame.method == DATA:
                self.record("ws:ack", {"service": frame.service, "headers": headers, "SeqID": frame.SeqID,
                                       "payload": json.loads(frame.payload)})
        self._sockets.remove(ws)
        return ws

    def deliver(self, event: dict[str, Any], message_id: str, parts: int = 1) -> None:
        """Push an event to every connected client as data frame(s), as Feishu does (again, for a redelivery)."""
        payload = json.dumps(event, ensure_ascii=False).encode()
        size = -(-len(payload) // parts)
        chunks = [payload[i * size:(i + 1) * size] for i in range(parts)]

        async def send() -> None:
            for ws in list(self._sockets):
                for seq, chunk in enumerate(chunks):
                    self._seq += 1
                    frame = Frame(SeqID=self._seq, LogID=self._seq, service=SERVICE_ID, method=DATA,
                                  payload=chunk)
                    for key, value in (("type", "event"), ("message_id", message_id),
                                       ("trace_id", f"trace-{message_id}"), ("sum", str(parts)), ("seq", str(seq))):
                        frame.headers.add(key=key, value=value)
                    await ws.send_bytes(frame.SerializeToString())

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(send(), self._loop).result(10)

    def acks(self, message_id: str) -> list[dict[str, Any]]:
        return [c.body for c in self.matching("ws:ack") if c.body["headers"].get("message_id") == message_id]


def receive_event(event_id: str, text: str, *, chat: str = "oc_group1", user: str = "ou_ada") -> dict[str, Any]:
    """An `im.message.receive_v1` event as Feishu sends it (schema 2.0)."""
    return {
        "schema": "2.0",
        "header": {"event_id": event_id, "token": "", "create_time": "1700000000000",
                   "event_type": "im.message.receive_v1", "tenant_key": "736588c9260f175d", "app_id": "cli_party"},
        "event": {
            "sender": {"sender_id": {"union_id": "on_1", "user_id": "u_1", "open_id": user}, "sender_type": "user",
                       "tenant_key": "736588c9260f175d"},
            "message": {"message_id": f"om_{event_id}", "root_id": "", "parent_id": "", "create_time": "1700000000000",
                        "update_time": "1700000000000", "chat_id": chat, "thread_id": "", "chat_type": "group",
                        "message_type": "text", "content": json.dumps({"text": text}, ensure_ascii=False),
                        "mentions": [], "user_agent": "Mozilla/5.0"}}}
