"""Socket and long-poll channels end to end (issue 16): `run_polling` (what `partyflow channels run` does) holds a
real discord.py gateway connection to a loopback Discord; messages are answered by the published workflow with the
conversation's memory, and IMAGE/AUDIO outputs arrive at the platform as real PNG/WAV files."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import threading
import wave
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.channels.discord_gateway import DiscordAPI, message_create
from tests.channels.platforms import PlatformAPI
from tests.channels.slack_socket import SlackAPI
from tests.channels.telegram_polling import TelegramAPI
from tests.server.test_access import _published

from partyflow import Engine
from partyflow.channels.runtime import channel_history, open_history
from partyflow.channels.service import Channels, run_polling
from partyflow.memory import SessionStore

SECRETS = {"PF_DISCORD_TOKEN": "discord-bot-token", "PF_SLACK_BOT": "xoxb-socket", "PF_SLACK_APP": "xapp-1-socket",
           "PF_TG_BOT": "4242:tg-poll", "PF_TG_SECRET": "unused-when-polling"}
GUILD, CHANNEL, ART_CHANNEL, ART_GUILD = "700000000000000001", "710000000000000001", "720000000000000001", "7300"


def _painter() -> dict[str, Any]:
    """The echo workflow plus a LoadImage and a LoadAudio whose outputs are sent as attachments."""
    document = _published("painter")
    document["nodes"] += [
        {"id": 4, "type": "LoadImage", "mode": 0, "inputs": [], "widgets_values": ["dot.png", "image"],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": []}, {"name": "MASK", "type": "MASK", "links": []}]},
        {"id": 5, "type": "LoadAudio", "mode": 0, "inputs": [], "widgets_values": ["beep.wav", None, None],
         "outputs": [{"name": "AUDIO", "type": "AUDIO", "links": []}]}]
    document["extra"]["partyflow"]["publish"]["attachments"] = [{"node": 4, "output": 0}, {"node": 5, "output": 0}]
    return document


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 30, 90)).save(out, format="PNG")
    return out.getvalue()


def _wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(b"\x00\x10" * 800)
    return out.getvalue()


@dataclass
class Running:
    engine: Engine
    discord: DiscordAPI
    slack: SlackAPI
    telegram: TelegramAPI
    stop: Any
    loop: asyncio.AbstractEventLoop
    result: dict[str, Channels]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    discord = DiscordAPI(token=SECRETS["PF_DISCORD_TOKEN"], heartbeat_ms=45_000).start()
    slack = SlackAPI(app_token=SECRETS["PF_SLACK_APP"]).start()
    telegram = TelegramAPI(token=SECRETS["PF_TG_BOT"]).start()
    home: Path = tmp_path_factory.mktemp("socket-channels")
    (home / "config.toml").write_text(f"""
[channels.discord]
type = "discord"
model = "echo"
bot_token_env = "PF_DISCORD_TOKEN"
api_base = "{discord.url}/api/v10"
allow_chats = ["{GUILD}", "dm"]

[channels.art]
type = "discord"
model = "painter"
bot_token_env = "PF_DISCORD_TOKEN"
api_base = "{discord.url}/api/v10"
allow_chats = ["{ART_CHANNEL}"]

[channels.slackart]
type = "slack"
model = "painter"
bot_token_env = "PF_SLACK_BOT"
app_token_env = "PF_SLACK_APP"
api_base = "{slack.url}/slack"
allow_chats = ["C-ART"]
session = "thread"

[channels.tgart]
type = "telegram"
model = "painter"
bot_token_env = "PF_TG_BOT"
secret_token_env = "PF_TG_SECRET"
api_base = "{telegram.url}"
allow_chats = ["555"]
""")
    workflows = home / "user" / "default" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "echo.json").write_text(json.dumps(_published("echo")))
    (workflows / "painter.json").write_text(json.dumps(_painter()))
    (home / "input").mkdir()
    (home / "input" / "dot.png").write_bytes(_png())
    (home / "input" / "beep.wav").write_bytes(_wav())
    saved = {k: os.environ.get(k) for k in SECRETS}
    os.environ.update(SECRETS)
    engine = Engine(home=home, builtin_packs=("core", "comfy"))
    runner = asyncio.Runner()  # like asyncio.run in `partyflow channels run`: leftover tasks are cancelled at the end
    loop = runner.get_loop()
    stop = asyncio.Event()
    result: dict[str, Channels] = {}

    def serve() -> None:
        with runner:
            result["channels"] = runner.run(run_polling(engine, None, stop))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield Running(engine, discord, slack, telegram, stop, loop, result)
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    engine.close()
    discord.stop()
    slack.stop()
    telegram.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_discord_gateway_identify_memory_typing_redelivery_and_splitting(running: Running) -> None:
    discord = running.discord
    identifies = discord.wait_for("gateway:op2", 2)  # both channels identify with the bot token and our intents
    for identify in identifies:
        data = identify.body["d"]
        assert data["token"] == SECRETS["PF_DISCORD_TOKEN"]
        assert data["intents"] & (1 << 15) and data["intents"] & (1 << 9) and data["intents"] & (1 << 12)
    connect = discord.matching("gateway:connect")[0].body
    assert connect["v"] == "10" and connect["encoding"] == "json" and connect["compress"] in ("zstd-stream",
                                                                                              "zlib-stream")
    posts = f"/api/v10/channels/{CHANNEL}/messages"
    discord.rate_limit_once.add(posts)  # the first answer meets a 429 with retry_after: discord.py waits, retries
    discord.dispatch("MESSAGE_CREATE", message_create(1001, "hello", channel=CHANNEL, guild=GUILD))
    [first] = discord.wait_for(posts)
    assert first.body["content"] == "You said: hello"
    assert first.headers["Authorization"] == f"Bot {SECRETS['PF_DISCORD_TOKEN']}"
    assert discord.matching(f"/api/v10/channels/{CHANNEL}/typing")  # typing before answering
    discord.dispatch("MESSAGE_CREATE", message_create(1001, "hello", channel=CHANNEL, guild=GUILD))  # redelivered
    discord.dispatch("MESSAGE_CREATE", message_create(1002, "intruder", channel="799", guild="798"))  # unknown
    discord.dispatch("MESSAGE_CREATE", message_create(1003, "me", channel=CHANNEL, guild=GUILD, bot=True))
    discord.dispatch("MESSAGE_CREATE", message_create(1004, "again", channel=CHANNEL, guild=GUILD))
    second = discord.wait_for(posts, 2)[1]
    assert second.body["content"] == "You said: again"
    discord.dispatch("MESSAGE_CREATE", message_create(1005, "y" * 4500, channel=CHANNEL, guild=GUILD))
    long = discord.wait_for(posts, 5)[2:]
    assert [len(c.body["content"]) <= 2000 for c in long] == [True, True, True]
    assert "".join(c.body["content"] for c in long) == "You said: " + "y" * 4500
    assert len(discord.matching(posts)) == 5 and not discord.matching("/channels/799/")
    session = f"channel:discord:{CHANNEL}"
    with SessionStore.open(running.engine.home.state_db) as memory:
        texts = [m.content for m in memory.messages(session)]
    assert texts[:4] == ["hello", "You said: hello", "again", "You said: again"]
    before = len(discord.matching("gateway:op1"))
    discord.request_heartbeat()  # the gateway asks for a heartbeat: each client answers with op 1 and its sequence
    beats = discord.wait_for("gateway:op1", before + 2)[before:]
    assert all(isinstance(beat.body["d"], int) and beat.body["d"] >= 1 for beat in beats)


def test_discord_dm_and_attachments_from_image_and_audio_outputs(running: Running) -> None:
    discord = running.discord
    discord.wait_for("gateway:op2", 2)
    discord.dispatch("MESSAGE_CREATE", message_create(2001, "draw", channel=ART_CHANNEL, guild=ART_GUILD))
    posts = discord.wait_for(f"/api/v10/channels/{ART_CHANNEL}/messages", 3)
    assert posts[0].body["content"] == "You said: draw"
    image, audio = posts[1].files["files[0]"], posts[2].files["files[0]"]
    assert image[0] == "output1-1.png" and image[2].startswith(b"\x89PNG\r\n\x1a\n")
    assert audio[0] == "output2-1.wav" and audio[2][:4] == b"RIFF" and audio[2][8:12] == b"WAVE"
    assert json.loads(posts[1].body["payload_json"])["attachments"][0]["filename"] == "output1-1.png"
    dm_channel = "740000000000000001"
    discord.dispatch("MESSAGE_CREATE", message_create(2002, "psst", channel=dm_channel, guild=None))
    [dm] = discord.wait_for(f"/api/v10/channels/{dm_channel}/messages")
    assert dm.body["content"] == "You said: psst"  # "dm" in allow_chats: direct messages are answered
    with closing(open_history(running.engine.home.state_db)) as db:
        rows = channel_history(db, "art")
    assert rows[0]["user"] == "900000000000000009" and rows[0]["workflow"] == "painter"
    assert rows[0]["attachments"] == ["output1-1.png", "output2-1.wav"] and rows[0]["status"] == "answered"
    assert rows[0]["prompt_tokens"] > 0 and rows[0]["answered"] >= rows[0]["received"]


def _slack_event(event_id: str, text: str, channel: str = "C-ART") -> dict[str, Any]:
    return {"type": "event_callback", "event_id": event_id, "team_id": "T1", "api_app_id": "A0PARTY",
            "event": {"type": "message", "channel": channel, "user": "U7", "text": text, "ts": f"1700.{event_id}",
                      "channel_type": "channel"}}


def test_slack_socket_mode_acks_redelivery_unknown_chat_and_file_uploads(running: Running) -> None:
    slack = running.slack
    slack.wait_for("socket:connect")
    slack.deliver("env-1", _slack_event("Ev1", "paint"))
    slack.deliver("env-1b", _slack_event("Ev1", "paint"), retry_attempt=1)  # redelivered: acknowledged, not answered
    slack.deliver("env-2", _slack_event("Ev2", "hi", channel="C-elsewhere"))  # not in allow_chats: ignored
    acks = slack.wait_for("socket:ack", 3)
    assert [a.body["envelope_id"] for a in acks] == ["env-1", "env-1b", "env-2"]
    [posted] = slack.wait_for("/slack/chat.postMessage")
    assert posted.body["channel"] == "C-ART" and posted.body["text"] == "You said: paint"
    assert posted.body["thread_ts"] == "1700.Ev1" and posted.headers["Authorization"] == "Bearer xoxb-socket"
    completed = slack.wait_for("/slack/files.completeUploadExternal", 2)
    uploads = slack.matching("/slack-upload/")
    assert sorted(u.path for u in uploads) == ["/slack-upload/F00001", "/slack-upload/F00002"]
    data = [next(iter(u.files.values()))[2] for u in uploads]
    assert any(d.startswith(b"\x89PNG\r\n\x1a\n") for d in data) and any(d[8:12] == b"WAVE" for d in data)
    asked = [c.body for c in slack.matching("/slack/files.getUploadURLExternal")]
    assert {a["filename"] for a in asked} == {"output1-1.png", "output2-1.wav"}
    assert all(int(a["length"]) == len(d) for a, d in zip(asked, data, strict=True))
    assert all(c.body["channel_id"] == "C-ART" and c.body["thread_ts"] == "1700.Ev1" for c in completed)
    slack.deliver("env-3", _slack_event("Ev3", "more"))  # answered after the redelivery: it was dropped, not queued
    assert slack.wait_for("/slack/chat.postMessage", 2)[1].body["text"] == "You said: more"
    assert len(slack.matching("/slack/chat.postMessage")) == 2
    slack.wait_for("files.completeUploadExternal", 4)  # the second answer's files
    slack.deliver("env-4", _slack_event("Ev4", "z" * 40_000))  # Slack's own limit; more than a workflow takes
    declined = slack.wait_for("/slack/chat.postMessage", 3)[2].body["text"]
    assert "too long" in declined and len(slack.matching("files.completeUploadExternal")) == 4  # nothing ran
    with SessionStore.open(running.engine.home.state_db) as memory:
        session = memory.session("channel:slackart:C-ART:1700.Ev1")
    assert session is not None and session.metadata["user"] == "U7" and session.metadata["workflow"] == "painter"


def _update(update_id: int, text: str, chat: int = 555) -> dict[str, Any]:
    return {"update_id": update_id, "message": {"message_id": update_id, "date": 1700000000, "text": text,
                                                "chat": {"id": chat, "type": "private"},
                                                "from": {"id": 9, "is_bot": False, "first_name": "Ada"}}}


def test_telegram_long_polling_sends_photo_and_audio(running: Running) -> None:
    telegram = running.telegram
    base = f"/bot{SECRETS['PF_TG_BOT']}"
    telegram.wait_for(f"{base}/getUpdates")
    telegram.push(_update(10, "draw me", chat=666))  # a chat outside allow_chats: ignored
    telegram.push(_update(11, "draw me"))
    telegram.push(_update(11, "draw me"))  # the same update again (a restart before confirming it): answered once
    [text] = telegram.wait_for(f"{base}/sendMessage")
    assert text.body["text"] == "You said: draw me" and str(text.body["chat_id"]) == "555"
    [photo] = telegram.wait_for(f"{base}/sendPhoto")
    [audio] = telegram.wait_for(f"{base}/sendAudio")
    assert photo.files["photo"][0] == "output1-1.png" and photo.files["photo"][2].startswith(b"\x89PNG")
    assert audio.files["audio"][0] == "output2-1.wav" and audio.files["audio"][2][8:12] == b"WAVE"
    assert str(photo.body["chat_id"]) == "555"
    telegram.push(_update(12, "again"))
    assert telegram.wait_for(f"{base}/sendMessage", 2)[1].body["text"] == "You said: again"
    telegram.wait_for(f"{base}/sendAudio", 2)
    offsets = [int(c.body.get("offset") or 0) for c in telegram.matching(f"{base}/getUpdates")]
    assert max(offsets) >= 12  # 10 and 11 were confirmed by asking for what comes after them
    assert len(telegram.matching(f"{base}/sendMessage")) == 2
    assert not any(str(c.body.get("chat_id")) == "666" for c in telegram.calls)


def test_feishu_uploads_an_image_then_sends_it_and_audio_as_a_file() -> None:
    from partyflow.channels.config import parse_channel
    from partyflow.channels.platforms import Feishu
    from partyflow.channels.runtime import Attachment, Inbound

    api = PlatformAPI().start()
    environ = {"PF_FS_ID": "cli_app", "PF_FS_SECRET": "fs-secret", "PF_FS_VERIFY": "fs-verify"}
    saved = {k: os.environ.get(k) for k in environ}
    os.environ.update(environ)
    try:
        adapter = Feishu(parse_channel("lark", {"type": "feishu", "model": "m", "app_id_env": "PF_FS_ID",
                                                "app_secret_env": "PF_FS_SECRET",
                                                "verification_token_env": "PF_FS_VERIFY", "api_base": api.url}))
        message = Inbound(event_id="e", chat_id="oc_9", user_id="ou_1", text="x")
        png, wav = _png(), _wav()
        asyncio.run(adapter.send_file(message, Attachment("output-1.png", png, "image", "image/png")))
        asyncio.run(adapter.send_file(message, Attachment("output-1.wav", wav, "audio", "audio/wav")))
    finally:
        api.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    [image] = api.matching("/open-apis/im/v1/images")
    assert image.body["image_type"] == "message" and image.files["image"][2] == png
    assert image.headers["Authorization"] == "Bearer t-test"
    [upload] = api.matching("/open-apis/im/v1/files")
    assert upload.body["file_type"] == "stream" and upload.body["file_name"] == "output-1.wav"
    assert upload.files["file"][2] == wav
    sent = [c.body for c in api.matching("/open-apis/im/v1/messages")]
    assert [(m["msg_type"], json.loads(m["content"])) for m in sent] == [
        ("image", {"image_key": "img_v2_0001"}), ("file", {"file_key": "file_v2_0001"})]
    assert all(m["receive_id"] == "oc_9" for m in sent)


def test_channels_run_command_answers_until_interrupted(tmp_path: Path) -> None:
    discord = DiscordAPI(token="cli-token").start()
    try:
        (tmp_path / "config.toml").write_text(f"""
[channels.bot]
type = "discord"
model = "echo"
bot_token_env = "PF_CLI_DISCORD"
api_base = "{discord.url}/api/v10"

[channels.hook]
type = "webhook"
model = "echo"
secret_env = "PF_CLI_HOOK"
api_base = "{discord.url}/hook"
""")
        workflows = tmp_path / "user" / "default" / "workflows"
        workflows.mkdir(parents=True)
        (workflows / "echo.json").write_text(json.dumps(_published("echo")))
        env = {**os.environ, "PF_CLI_DISCORD": "cli-token", "PF_CLI_HOOK": "x"}
        process = subprocess.Popen([sys.executable, "-m", "partyflow", "channels", "run", "--home", str(tmp_path)],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            discord.wait_for("gateway:op2", timeout=60)
            discord.dispatch("MESSAGE_CREATE", message_create(4001, "cli", channel="760", guild="761"))
            [posted] = discord.wait_for("/api/v10/channels/760/messages")
            assert posted.body["content"] == "You said: cli"
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, err
        assert "channel hook: webhook channels receive events over HTTP" in err  # named, and the others ran
    finally:
        discord.stop()


def test_turn_cost_comes_from_the_usage_ledger(running: Running) -> None:
    from types import SimpleNamespace

    from partyflow.channels import load_channels
    from partyflow.channels.runtime import ChannelRuntime
    from partyflow.llm.usage.ledger import CallLabels
    from partyflow.server.published import ChatTurn

    runtime = ChannelRuntime(running.engine, load_channels(running.engine.settings.raw)["discord"])
    try:
        ledger = running.engine.host.usage.ledger()
        for tokens, cost in ((100, 0.002), (30, 0.0005)):  # two metered model calls of one prompt
            call = ledger.begin("openai", "gpt-x", CallLabels(workflow="echo", prompt_id="prompt-77"))
            ledger.finish(call, "ok", prompt_tokens=tokens, completion_tokens=tokens // 10, cost=cost)
        turn = ChatTurn(text="hi", history=[])
        usage, cost = runtime._usage(SimpleNamespace(prompt_id="prompt-77"), runtime.publication(), turn, "answer")
        assert usage == {"prompt_tokens": 130, "completion_tokens": 13, "total_tokens": 143, "estimated": 0}
        assert cost == pytest.approx(0.0025)
        unmetered, none = runtime._usage(SimpleNamespace(prompt_id="prompt-78"), runtime.publication(), turn, "ok")
        assert unmetered["estimated"] == 1 and none is None
    finally:
        runtime.close()
