"""GET /ws?clientId=...: ComfyUI's WebSocket. Sends `status` on connect; the hub and worker send the rest."""

from __future__ import annotations

import json
import logging
import re
import uuid

from aiohttp import WSMsgType, web

from partyflow.server.access import identity_of, prompt_owner, signed_in
from partyflow.server.context import ServerContext, context
from partyflow.server.hub import Client
from partyflow.server.routes.info import server_features
from partyflow.server.worker import status_message

logger = logging.getLogger("partyflow.server.ws")

MAX_INCOMING_BYTES = 1024 * 1024
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ctx = context(request)
    client_id = request.query.get("clientId", "")
    if not _CLIENT_ID.match(client_id):
        client_id = uuid.uuid4().hex
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_INCOMING_BYTES)
    await ws.prepare(request)
    transport = request.transport

    def abort() -> None:
        if transport is not None:
            transport.abort()

    identity = identity_of(request)
    account = identity.user if signed_in(identity) else None
    client = ctx.hub.attach(client_id, ws, abort, user=account, sees_all=identity is None or identity.is_admin)
    client_id = client.client_id
    try:
        ctx.hub.send_to(client, status_message(ctx.engine.queue.known_remaining(), sid=client_id))
        current = ctx.worker.current
        if current is not None and ctx.worker.last_node and current.extra_data.get("client_id") == client_id \
                and (client.sees_all or prompt_owner(current.extra_data) == client.user):
            # A client reconnecting mid-prompt learns which node is running, as ComfyUI tells it.
            ctx.hub.send_to(client, {"type": "executing", "data": {
                "node": ctx.worker.last_node, "display_node": ctx.worker.last_node, "prompt_id": current.prompt_id}})
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                _incoming(ctx, client, message.data)
            elif message.type == WSMsgType.ERROR:
                break
    finally:
        ctx.hub.detach(client)
    return ws


def _incoming(ctx: ServerContext, client: Client, text: str) -> None:
    """Clients announce their feature flags; we answer with ours. Anything else is ignored, as in ComfyUI."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes: ignored all the same
        return
    if isinstance(message, dict) and message.get("type") == "feature_flags":
        ctx.hub.send_to(client, {"type": "feature_flags", "data": server_features(ctx.config.max_upload_bytes)})
