"""Each platform's side, through its official SDK: verify an incoming request, read it as an `Inbound`
message, and post answers (with the platform's limits, typing indicators and rate-limit retries).

`verify(headers, body)` raises `Refused` (the HTTP status to answer and why) for a request that does not come
from the platform — a bad signature, a replayed timestamp, a wrong secret — and returns either a reply the
platform expects at once (a URL challenge) or the message to answer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from partyflow.channels.config import ChannelConfig
from partyflow.channels.runtime import Attachment, Inbound

logger = logging.getLogger("partyflow.channels")

REPLAY_WINDOW_S = 300  # a signed request older (or newer) than this is a replay
MAX_RATE_LIMIT_RETRIES = 3


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Verified:
    """What an incoming request means: a direct reply (challenges, pings) and/or a message to answer."""

    reply: dict[str, Any] | None = None
    message: Inbound | None = None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "the body is not JSON") from None


def _fresh(timestamp: str | None, now: float) -> None:
    try:
        sent = float(timestamp or "")
    except ValueError:
        raise Refused(401, "missing or malformed request timestamp") from None
    if abs(now - sent) > REPLAY_WINDOW_S:
        raise Refused(401, "the request timestamp is too old or in the future (a replay?)")


# ---- Slack (Events API; answers through the Web API) -----------------------------------------------------------


class Slack:
    """The Events API over HTTP (signing secret), or Socket Mode (`app_token_env`: an xapp- token; events arrive
    over a websocket from apps.connections.open and are acknowledged by envelope id)."""

    limit = 3900  # Slack truncates long messages and advises staying under 4,000 characters

    def __init__(self, config: ChannelConfig) -> None:
        from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
        from slack_sdk.signature import SignatureVerifier
        from slack_sdk.web.async_client import AsyncWebClient

        self.config = config
        self.socket = "app_token_env" in config.credentials
        self.listens = self.socket
        self._app_token = config.secret("app_token_env") if self.socket else None
        self._verifier = None if self.socket else SignatureVerifier(config.secret("signing_secret_env"))
        base = f"{config.api_base}/" if config.api_base else "https://slack.com/api/"
        self.client = AsyncWebClient(token=config.secret("bot_token_env"), base_url=base)
        self.client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=MAX_RATE_LIMIT_RETRIES))

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Verified:
        if self._verifier is None:
            raise Refused(404, "this Slack channel uses Socket Mode: run `partyflow channels run`")
        timestamp = headers.get("X-Slack-Request-Timestamp")
        _fresh(timestamp, now or time.time())
        if not self._verifier.is_valid(body, timestamp or "", headers.get("X-Slack-Signature", "")):
            raise Refused(401, "the Slack signature does not match")
        event = _json(body)
        if event.get("type") == "url_verification":
            return Verified(reply={"challenge": event.get("challenge", "")})
        return Verified(message=self.read(event))

    def read(self, event: Mapping[str, Any]) -> Inbound | None:
        """An event_callback's message (also the payload of a Socket Mode `events_api` envelope)."""
        inner = event.get("event") or {}
        if event.get("type") != "event_callback" or inner.get("type") not in ("message", "app_mention") \
                or inner.get("bot_id") or inner.get("subtype") or not isinstance(inner.get("text"), str):
            return None  # edits, joins, our own posts: nothing to answer
        return Inbound(event_id=str(event.get("event_id") or inner.get("ts")), chat_id=str(inner.get("channel", "")),
                       user_id=str(inner.get("user", "")), text=inner["text"],
                       thread_id=inner.get("thread_ts") or inner.get("ts"), space=event.get("team_id"))

    async def check(self) -> None:
        """auth.test with the bot token (and apps.connections.open's token check is left to `run`)."""
        await self.client.auth_test()

    async def run(self, on_message: Any, stop: asyncio.Event) -> None:
        """Socket Mode until `stop`: every envelope is acknowledged at once (Slack redelivers unacknowledged ones,
        with `retry_attempt`); redeliveries of an answered event are dropped by its event id."""
        from slack_sdk.socket_mode.aiohttp import SocketModeClient
        from slack_sdk.socket_mode.response import SocketModeResponse

        client = SocketModeClient(app_token=str(self._app_token), web_client=self.client,
                                  auto_reconnect_enabled=True)

        async def listener(client: Any, request: Any) -> None:
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
            if request.type == "events_api" and isinstance(request.payload, dict):
                message = self.read(request.payload)
                if message is not None:
                    on_message(message)

        client.socket_mode_request_listeners.append(listener)
        try:
            await client.connect()
            await stop.wait()
        finally:
            await client.close()

    async def typing(self, message: Inbound) -> None:
        return None  # the Web API has no typing indicator for bots

    async def send(self, message: Inbound, text: str) -> None:
        await self.client.chat_postMessage(channel=message.chat_id, text=text,
                                           thread_ts=message.thread_id if self.config.session == "thread" else None)

    async def send_file(self, message: Inbound, attachment: Attachment) -> None:
        """Slack's upload flow (files.getUploadURLExternal, the upload, files.completeUploadExternal), which
        slack_sdk's files_upload_v2 performs; the file is shared into the chat (and thread)."""
        await self.client.files_upload_v2(channel=message.chat_id, content=attachment.data,
                                          filename=attachment.filename, title=attachment.filename,
                                          thread_ts=message.thread_id if self.config.session == "thread" else None)


# ---- Telegram (webhook or long polling; answers through the Bot API) -------------------------------------------


class Telegram:
    limit = 4096
    typing_every = 4.0  # Telegram shows a chat action for 5 seconds
    listens = True  # long polling with `partyflow channels run` (or its webhook in `partyflow serve`)

    def __init__(self, config: ChannelConfig) -> None:
        from telegram import Bot

        self.config = config
        self._secret = config.secret("secret_token_env")
        base = config.api_base or "https://api.telegram.org"
        self.bot = Bot(config.secret("bot_token_env"), base_url=f"{base}/bot", base_file_url=f"{base}/file/bot")

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Verified:
        offered = headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(offered.encode(), self._secret.encode()):
            raise Refused(401, "the Telegram secret token does not match")
        return Verified(message=self.read(_json(body)))

    def read(self, update: Mapping[str, Any]) -> Inbound | None:
        message = update.get("message") or {}
        if not isinstance(message.get("text"), str) or (message.get("from") or {}).get("is_bot"):
            return None
        thread = message.get("message_thread_id")
        return Inbound(event_id=str(update.get("update_id")), chat_id=str((message.get("chat") or {}).get("id")),
                       user_id=str((message.get("from") or {}).get("id")), text=message["text"],
                       thread_id=None if thread is None else str(thread))

    async def check(self) -> None:
        async with self.bot:  # initialize() calls getMe: a revoked token fails here
            pass

    async def typing(self, message: Inbound) -> None:
        await self._retrying(self.bot.send_chat_action, chat_id=message.chat_id, action="typing")

    async def send(self, message: Inbound, text: str) -> None:
        thread = int(message.thread_id) if message.thread_id and self.config.session == "thread" else None
        await self._retrying(self.bot.send_message, chat_id=message.chat_id, text=text, message_thread_id=thread)

    async def send_file(self, message: Inbound, attachment: Attachment) -> None:
        """sendPhoto for images, sendAudio for audio (multipart uploads)."""
        from telegram import InputFile

        thread = int(message.thread_id) if message.thread_id and self.config.session == "thread" else None
        upload = InputFile(attachment.data, filename=attachment.filename)
        if attachment.kind == "image":
            await self._retrying(self.bot.send_photo, chat_id=message.chat_id, photo=upload, message_thread_id=thread)
        else:
            await self._retrying(self.bot.send_audio, chat_id=message.chat_id, audio=upload, message_thread_id=thread)

    async def _retrying(self, call: Any, **arguments: Any) -> Any:
        from telegram.error import RetryAfter

        for attempt in range(MAX_RATE_LIMIT_RETRIES + 1):
            try:
                return await call(**arguments)
            except RetryAfter as exc:  # 429 with retry_after, as the Bot API documents
                if attempt == MAX_RATE_LIMIT_RETRIES:
                    raise
                wait = exc.retry_after.total_seconds() if hasattr(exc.retry_after, "total_seconds") else exc.retry_after
                await asyncio.sleep(float(wait))
        return None

    async def run(self, on_message: Any, stop: asyncio.Event) -> None:
        """Long polling (`partyflow channels run`): getUpdates until `stop`, acknowledging each batch."""
        offset = None
        async with self.bot:
            while not stop.is_set():
                fetch = asyncio.ensure_future(self.bot.get_updates(offset=offset, timeout=25,
                                                                   allowed_updates=["message"]))
                halt = asyncio.ensure_future(stop.wait())
                await asyncio.wait({fetch, halt}, return_when=asyncio.FIRST_COMPLETED)
                halt.cancel()
                if not fetch.done():
                    fetch.cancel()
                    await asyncio.gather(fetch, return_exceptions=True)
                    break
                updates = fetch.result()
                for update in updates:
                    offset = update.update_id + 1
                    message = self.read(update.to_dict())
                    if message is not None:
                        on_message(message)


# ---- Feishu / Lark (event subscription; answers through the Open API) -------------------------------------------


class Feishu:
    """The event subscription over HTTP (verification token, optional encryption), or the long connection
    (`mode = "long_connection"`: lark-oapi's websocket client in a child process, see `feishu_ws`; no public
    URL, no verification token). Answers go through the Open API either way."""

    limit = 4000

    def __init__(self, config: ChannelConfig) -> None:
        import lark_oapi as lark

        self.config = config
        self.socket = self.listens = config.mode == "long_connection"
        self._token = None if self.socket else config.secret("verification_token_env")
        self._encrypt_key = None if self.socket else config.optional_secret("encrypt_key_env")
        self._app_id, self._app_secret = config.secret("app_id_env"), config.secret("app_secret_env")
        builder = lark.Client.builder().app_id(self._app_id).app_secret(self._app_secret)
        if config.api_base:
            builder = builder.domain(config.api_base)
        self.client = builder.log_level(lark.LogLevel.ERROR).build()

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Verified:
        if self._token is None:
            raise Refused(404, "this Feishu channel uses the long connection: run `partyflow channels run`")
        event = _json(body)
        if self._encrypt_key:
            self._check_signature(headers, body, now or time.time())
            if "encrypt" in event:
                event = json.loads(decrypt(self._encrypt_key, str(event["encrypt"])))
        token = event.get("token") or (event.get("header") or {}).get("token", "")
        if not hmac.compare_digest(str(token).encode(), self._token.encode()):
            raise Refused(401, "the Feishu verification token does not match")
        if event.get("type") == "url_verification":
            return Verified(reply={"challenge": event.get("challenge", "")})
        return Verified(message=self.read(event))

    def read(self, event: Mapping[str, Any]) -> Inbound | None:
        """A v2 `im.message.receive_v1` text message (from either delivery); None for anything else."""
        header, body_event = event.get("header") or {}, event.get("event") or {}
        if header.get("event_type") != "im.message.receive_v1" or not isinstance(body_event, Mapping):
            return None
        message = body_event.get("message") or {}
        if message.get("message_type") != "text":
            return None
        try:
            text = json.loads(message.get("content") or "{}").get("text", "")
        except (ValueError, AttributeError):
            return None
        if not isinstance(text, str):
            return None
        sender = ((body_event.get("sender") or {}).get("sender_id") or {}).get("open_id", "")
        return Inbound(event_id=str(header.get("event_id")), chat_id=str(message.get("chat_id")),
                       user_id=str(sender), text=text, thread_id=message.get("thread_id") or message.get("root_id"))

    async def check(self) -> None:
        """A tenant access token for the app id and secret (auth/v3/tenant_access_token/internal)."""
        from lark_oapi.api.auth.v3 import (
            InternalTenantAccessTokenRequest,
            InternalTenantAccessTokenRequestBody,
        )

        request = InternalTenantAccessTokenRequest.builder().request_body(
            InternalTenantAccessTokenRequestBody.builder().app_id(self._app_id).app_secret(self._app_secret).build()
        ).build()
        response = await self.client.auth.v3.tenant_access_token.ainternal(request)
        if not response.success():
            raise RuntimeError(f"Feishu refused the app credentials: {response.code} {response.msg}")

    async def run(self, accept: Any, stop: asyncio.Event) -> None:
        """The long connection until `stop` (a supervised child process; see `feishu_ws`)."""
        from partyflow.channels.feishu_ws import LongConnection

        def on_event(event: dict[str, Any]) -> None:
            message = self.read(event)
            if message is not None:
                accept(message)

        await LongConnection(self.config, self.config.api_base or "https://open.feishu.cn", on_event).run(stop)

    def _check_signature(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        timestamp = headers.get("X-Lark-Request-Timestamp")
        _fresh(timestamp, now)
        nonce = headers.get("X-Lark-Request-Nonce", "")
        expected = hashlib.sha256((f"{timestamp}{nonce}{self._encrypt_key}").encode() + body).hexdigest()
        if not hmac.compare_digest(expected, headers.get("X-Lark-Signature", "")):
            raise Refused(401, "the Feishu signature does not match")

    async def typing(self, message: Inbound) -> None:
        return None  # bots cannot show typing in Feishu

    async def send(self, message: Inbound, text: str) -> None:
        await self._post(message, "text", {"text": text})

    async def send_file(self, message: Inbound, attachment: Attachment) -> None:
        """Images: upload (im/v1/images, image_type "message") then an image message. Audio: Feishu's audio
        messages take Opus only, so a WAV goes as a file (im/v1/files, file_type "stream") in a file message."""
        import io

        from lark_oapi.api.im.v1 import (
            CreateFileRequest,
            CreateFileRequestBody,
            CreateImageRequest,
            CreateImageRequestBody,
        )

        if attachment.kind == "image":
            request = CreateImageRequest.builder().request_body(
                CreateImageRequestBody.builder().image_type("message").image(io.BytesIO(attachment.data)).build()
            ).build()
            response = await self._retrying(self.client.im.v1.image.acreate, request)
            await self._post(message, "image", {"image_key": response.data.image_key})
            return
        request = CreateFileRequest.builder().request_body(
            CreateFileRequestBody.builder().file_type("stream").file_name(attachment.filename)
            .file(io.BytesIO(attachment.data)).build()
        ).build()
        response = await self._retrying(self.client.im.v1.file.acreate, request)
        await self._post(message, "file", {"file_key": response.data.file_key})

    async def _post(self, message: Inbound, kind: str, content: dict[str, Any]) -> None:
        from lark_oapi.api.im.v1 import CreateMessageRequest, CreateMessageRequestBody

        request = (CreateMessageRequest.builder().receive_id_type("chat_id")
                   .request_body(CreateMessageRequestBody.builder().receive_id(message.chat_id).msg_type(kind)
                                 .content(json.dumps(content, ensure_ascii=False)).build()).build())
        await self._retrying(self.client.im.v1.message.acreate, request)

    async def _retrying(self, call: Any, request: Any) -> Any:
        for attempt in range(MAX_RATE_LIMIT_RETRIES + 1):
            response = await call(request)
            if response.success():
                return response
            if response.code == 99991400 and attempt < MAX_RATE_LIMIT_RETRIES:  # Feishu's "too many requests"
                await asyncio.sleep(2 ** attempt)
                continue
            raise RuntimeError(f"Feishu refused the request: {response.code} {response.msg}")
        return None


def decrypt(encrypt_key: str, data: str) -> str:
    """Feishu's event encryption: AES-256-CBC, key = SHA-256 of the encrypt key, IV = the first 16 bytes."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    raw = base64.b64decode(data)
    key = hashlib.sha256(encrypt_key.encode()).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(raw[:16])).decryptor()
    padded = decryptor.update(raw[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(padded) + unpadder.finalize()).decode()


# ---- generic webhooks (HMAC-signed JSON both ways) ----------------------------------------------------------------


class Webhook:
    """`{"id", "chat", "user", "text"}` in, signed `X-Partyflow-Signature: sha256=HMAC(secret, "<ts>.<body>")`
    with `X-Partyflow-Timestamp`; answers POSTed to the configured `reply_url`, signed the same way."""

    limit = 16_000

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config
        self._secret = config.secret("secret_env").encode()
        if not config.api_base:
            from partyflow.channels.config import ChannelConfigError

            raise ChannelConfigError(f"[channels.{config.name}] needs api_base: the URL answers are POSTed to")

    def sign(self, timestamp: str, body: bytes) -> str:
        return "sha256=" + hmac.new(self._secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Verified:
        timestamp = headers.get("X-Partyflow-Timestamp")
        _fresh(timestamp, now or time.time())
        if not hmac.compare_digest(self.sign(timestamp or "", body), headers.get("X-Partyflow-Signature", "")):
            raise Refused(401, "the webhook signature does not match")
        event = _json(body)
        if not isinstance(event, dict) or not all(isinstance(event.get(k), (str, int)) for k in ("id", "chat", "text")):
            raise Refused(400, 'send {"id", "chat", "user", "text"}')
        return Verified(message=Inbound(event_id=str(event["id"]), chat_id=str(event["chat"]),
                                        user_id=str(event.get("user", "")), text=str(event["text"])))

    async def typing(self, message: Inbound) -> None:
        return None

    async def send(self, message: Inbound, text: str) -> None:
        import httpx

        body = json.dumps({"chat": message.chat_id, "in_reply_to": message.event_id, "text": text}).encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Partyflow-Timestamp": timestamp,
                   "X-Partyflow-Signature": self.sign(timestamp, body)}
        async with httpx.AsyncClient(timeout=30) as client:
            for attempt in range(MAX_RATE_LIMIT_RETRIES + 1):
                response = await client.post(str(self.config.api_base), content=body, headers=headers)
                if response.status_code == 429 and attempt < MAX_RATE_LIMIT_RETRIES:
                    await asyncio.sleep(float(response.headers.get("Retry-After", 2 ** attempt)))
                    continue
                response.raise_for_status()
                return


ADAPTERS: dict[str, type] = {"slack": Slack, "telegram": Telegram, "feishu": Feishu, "webhook": Webhook}


def adapter_for(config: ChannelConfig) -> Any:
    """The platform adapter (raises ChannelConfigError for missing credentials, naming the variable)."""
    if config.type == "discord":
        from partyflow.channels.discord_bot import Discord

        return Discord(config)
    return ADAPTERS[config.type](config)
