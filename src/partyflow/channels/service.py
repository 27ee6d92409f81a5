"""Channels inside `partyflow serve` (webhook routes; Discord and Slack Socket Mode connect out from the server
too) and standalone (`partyflow channels run`: gateway, Socket Mode and long-polling connections).

Each configured channel is started on its own: one with missing credentials or an unpublished workflow is
reported (at start and by `partyflow channels test`) and skipped, and the others keep working. Webhook-style
platforms post to `/channels/<name>/events`; the answer is acknowledged at once and posted in the background.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from partyflow.channels.config import ChannelConfig, ChannelConfigError, load_channels
from partyflow.channels.platforms import Refused, adapter_for
from partyflow.channels.runtime import ChannelRunError, ChannelRuntime, channel_history, open_history

logger = logging.getLogger("partyflow.channels")
MAX_EVENT_BYTES = 1024 * 1024


@dataclass
class Channel:
    config: ChannelConfig
    adapter: Any
    runtime: ChannelRuntime


@dataclass
class Channels:
    running: dict[str, Channel] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # name -> why it is not running

    def close(self) -> None:
        for channel in self.running.values():
            channel.runtime.close()


def start_channels(engine: Any, names: list[str] | None = None) -> Channels:
    """Build every configured channel that can work; the others are listed in `problems` with the reason."""
    channels = Channels()
    try:
        configs = load_channels(engine.settings.raw)
    except ChannelConfigError as exc:
        channels.problems["[channels]"] = str(exc)
        return channels
    for name, config in configs.items():
        if names and name not in names:
            continue
        try:
            adapter = adapter_for(config)
            runtime = ChannelRuntime(engine, config)
            try:
                runtime.publication()
            except ChannelRunError:
                runtime.close()
                raise
        except ImportError as exc:
            channels.problems[name] = (f"the {config.type} SDK is not installed ({exc.name}): "
                                       "pip install 'partyflow[channels]'")
            logger.error("channel %s not started: %s", name, channels.problems[name])
            continue
        except (ChannelConfigError, ChannelRunError) as exc:
            channels.problems[name] = str(exc)
            logger.error("channel %s not started: %s", name, exc)
            continue
        channels.running[name] = Channel(config, adapter, runtime)
    return channels


def channels_extension(engine: Any) -> Callable[[web.Application], None]:
    """The `/channels/<name>/events` route (and `/channels/history`, admins only) for `create_app(extensions=...)`;
    socket channels (Discord, Slack Socket Mode, Feishu long connection) are connected for as long as the server
    runs."""

    def install(app: web.Application) -> None:
        state: dict[str, Channels] = {}

        async def lifecycle(app: web.Application) -> Any:
            channels = state["channels"] = start_channels(engine)
            stop, sockets = asyncio.Event(), []
            for name, channel in channels.running.items():
                if getattr(channel.adapter, "socket", False):  # Discord, Slack Socket Mode, Feishu: connect out
                    sockets.append(asyncio.create_task(_listen(name, channel, stop, channels), name=f"channel-{name}"))
                    logger.info("channel %s connecting to %s", name, channel.config.type)
                else:
                    logger.info("channel %s listening on /channels/%s/events", name, name)
            yield
            stop.set()
            await asyncio.gather(*sockets, return_exceptions=True)
            for channel in channels.running.values():
                await channel.runtime.drain()
            channels.close()

        async def events(request: web.Request) -> web.Response:
            channel = state["channels"].running.get(request.match_info["name"])
            if channel is None or getattr(channel.adapter, "socket", False):
                return web.json_response({"error": "no such channel, or it is not running"}, status=404)
            if request.content_length is not None and request.content_length > MAX_EVENT_BYTES:
                return web.json_response({"error": "the event is too large"}, status=413)
            body = await request.read()
            try:
                verified = channel.adapter.verify(request.headers, body)
            except Refused as exc:
                logger.warning("channel %s refused a request from %s: %s", channel.config.name, request.remote,
                               exc.reason)
                return web.json_response({"error": exc.reason}, status=exc.status)
            if verified.message is not None:
                channel.runtime.accept(verified.message, channel.adapter)
            return web.json_response(verified.reply or {"ok": True})

        async def history(request: web.Request) -> web.Response:
            try:
                limit = int(request.query.get("limit", "50"))
            except ValueError:
                limit = 0
            if not 1 <= limit <= 10_000:
                return web.json_response({"error": "limit must be a whole number from 1 to 10000"}, status=400)
            channel = request.query.get("channel") or None

            def read() -> list[dict[str, Any]]:
                with closing(open_history(engine.home.state_db)) as db:
                    return channel_history(db, channel, limit=limit)

            return web.json_response({"turns": await asyncio.to_thread(read)})

        app.cleanup_ctx.append(lifecycle)
        app.router.add_post("/channels/{name}/events", events)
        app.router.add_get("/channels/history", history)

    return install


async def run_polling(engine: Any, names: list[str] | None, stop: asyncio.Event) -> Channels:
    """`partyflow channels run`: hold the connections of the channels that receive over a socket or long
    polling (Discord gateway, Slack Socket Mode, Feishu long connection, Telegram getUpdates) until `stop`. A channel whose connection
    fails is reported in `problems`; the others keep running."""
    channels = start_channels(engine, names)
    listeners = []
    for name, channel in channels.running.items():
        if not getattr(channel.adapter, "listens", False):
            channels.problems[name] = (f"{channel.config.type} channels receive events over HTTP: run "
                                       "`partyflow serve` and point the platform at /channels/NAME/events")
            continue
        listeners.append(asyncio.create_task(_listen(name, channel, stop, channels), name=f"channel-{name}"))
    if listeners:
        waiter = asyncio.create_task(stop.wait())
        everything = asyncio.gather(*listeners, return_exceptions=True)
        await asyncio.wait({waiter, everything}, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        await everything
        waiter.cancel()
        for channel in channels.running.values():
            await channel.runtime.drain()
    channels.close()
    return channels


async def _listen(name: str, channel: Channel, stop: asyncio.Event, channels: Channels) -> None:
    """Hold one channel's connection; a failure is logged and listed in `problems`, the others keep running."""

    def accept(message: Any) -> None:
        channel.runtime.accept(message, channel.adapter)

    try:
        await channel.adapter.run(accept, stop)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # one platform's outage or refusal must not stop the other channels
        logger.error("channel %s stopped: %s", name, exc, exc_info=logger.isEnabledFor(logging.DEBUG))
        channels.problems[name] = f"its connection failed: {type(exc).__name__}: {exc}"


CHECK_TIMEOUT_S = 30.0


async def check_online(channels: Channels, name: str) -> None:
    """Ask the platform whether it accepts the channel's credentials (Slack auth.test, Telegram getMe, Discord
    GET /users/@me); a refusal or an outage goes into `problems`. Platforms without such a call are skipped."""
    check = getattr(channels.running[name].adapter, "check", None)
    if check is None:
        return
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        channels.problems[name] = f"the platform did not answer within {CHECK_TIMEOUT_S:.0f} seconds"
    except Exception as exc:  # each SDK has its own errors; all of them mean the same here
        channels.problems[name] = f"the platform refused the credentials or could not be reached: {exc}"
