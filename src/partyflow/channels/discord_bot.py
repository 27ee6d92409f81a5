"""Discord through discord.py: a gateway connection (`partyflow channels run`), answers over the REST API.

Discord has no signed webhook for ordinary messages: a bot holds a websocket to the gateway (HELLO, IDENTIFY,
READY, heartbeats, then MESSAGE_CREATE dispatches) and posts with `POST /channels/{id}/messages`. discord.py does
both; it waits out 429 answers itself (their `retry_after`), up to `MAX_RATE_LIMIT_WAIT_S` per request. The bot
needs the Message Content privileged intent to read what people write.

`api_base` (for a proxy, or the tests' stand-in) replaces `https://discord.com/api/v10` for this channel's client
only; the gateway address comes from `GET /gateway/bot`, as Discord recommends.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Mapping
from typing import Any

from partyflow.channels.config import ChannelConfig
from partyflow.channels.runtime import Attachment, Inbound

logger = logging.getLogger("partyflow.channels")

MAX_RATE_LIMIT_WAIT_S = 60.0  # a longer retry_after fails the send instead of blocking the chat


class Discord:
    limit = 2000  # Discord's message content limit
    typing_every = 8.0  # Discord shows "typing" for 10 seconds
    socket = listens = True  # receives over the gateway, not over HTTP

    def __init__(self, config: ChannelConfig) -> None:
        import discord  # noqa: F401 - fail at start-up, with the install hint, when the extra is missing

        self.config = config
        self._token = config.secret("bot_token_env")
        self.client: Any = None
        self._warned_empty = False

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Any:
        from partyflow.channels.platforms import Refused

        raise Refused(404, "Discord messages arrive over the gateway: run `partyflow channels run`")

    def read(self, message: Any) -> Inbound | None:
        """A discord.py Message as an Inbound; None for bots (ourselves included) and empty messages."""
        if message.author.bot:
            return None
        if not message.content:
            if not self._warned_empty:
                self._warned_empty = True
                logger.warning("channel %s: a message arrived without content; enable the Message Content intent "
                               "for this bot in Discord's developer portal", self.config.name)
            return None
        channel_id = str(message.channel.id)
        guild = message.guild.id if message.guild is not None else getattr(message.channel, "guild_id", None)
        return Inbound(event_id=str(message.id), chat_id=channel_id, user_id=str(message.author.id),
                       text=message.content, thread_id=channel_id,  # a Discord thread is a channel of its own
                       space=str(guild) if guild else "dm")

    def _channel(self, message: Inbound) -> Any:
        if self.client is None:
            raise RuntimeError("the Discord client is not connected")
        return self.client.get_partial_messageable(int(message.chat_id))

    async def typing(self, message: Inbound) -> None:
        await self._channel(message).typing()  # POST /channels/{id}/typing: shown for ten seconds or until we post

    async def send(self, message: Inbound, text: str) -> None:
        await self._channel(message).send(content=text)

    async def send_file(self, message: Inbound, attachment: Attachment) -> None:
        import discord

        await self._channel(message).send(file=discord.File(io.BytesIO(attachment.data),
                                                            filename=attachment.filename))

    async def check(self) -> None:
        """GET /users/@me with the token (discord.py's login): LoginFailure for a revoked token."""
        import discord

        client = discord.Client(intents=discord.Intents.none())
        if self.config.api_base:
            _point_at(client, self.config.api_base)
        try:
            await client.http.static_login(self._token)
        finally:
            await client.close()

    async def run(self, accept: Callable[[Inbound], None], stop: asyncio.Event) -> None:
        """Hold the gateway connection until `stop` (discord.py reconnects and resumes on its own)."""
        import discord

        intents = discord.Intents.none()
        intents.guilds = intents.guild_messages = intents.dm_messages = intents.message_content = True
        client = discord.AutoShardedClient(intents=intents, max_ratelimit_timeout=MAX_RATE_LIMIT_WAIT_S)
        if self.config.api_base:
            _point_at(client, self.config.api_base)

        async def on_message(message: Any) -> None:
            inbound = self.read(message)
            if inbound is not None:
                accept(inbound)

        client.event(on_message)
        self.client = client
        runner = asyncio.create_task(client.start(self._token, reconnect=True), name=f"discord-{self.config.name}")
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not client.is_closed():
                await client.close()
            if not runner.done():
                runner.cancel()
            await asyncio.gather(runner, stopper, return_exceptions=True)
        if not runner.cancelled() and runner.exception() is not None:
            raise runner.exception()  # type: ignore[misc]


def _point_at(client: Any, base: str) -> None:
    """Send this client's REST calls to `base` instead of Discord's (per client, not discord.py's class-wide
    `Route.BASE`, so other channels in the process are untouched)."""
    from discord.http import Route

    original = client.http.request

    async def request(route: Any, **options: Any) -> Any:
        if route.url.startswith(Route.BASE):
            route.url = base.rstrip("/") + route.url[len(Route.BASE):]
        return await original(route, **options)

    client.http.request = request
