"""Channels end to end (issue 16): a platform's signed event arrives at a real `partyflow serve` app, the published
workflow answers with the conversation's memory, and the reply reaches the platform's API through the official SDK
(slack_sdk, python-telegram-bot, lark-oapi) — pointed at loopback stand-ins that speak each platform's wire format."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from tests.channels.discord_gateway import DiscordAPI, message_create
from tests.channels.platforms import PlatformAPI
from tests.server.live import LiveServer, start_server
from tests.server.test_access import _published

from partyflow import Engine
from partyflow.channels import ChannelConfigError, load_channels, split_text
from partyflow.channels.platforms import decrypt
from partyflow.memory import SessionStore
from partyflow.server import ServerConfig
from partyflow.server.frontend import frontend_extension

SECRETS = {"PF_SLACK_TOKEN": "xoxb-test", "PF_SLACK_SIGNING": "slack-signing-secret",
           "PF_TG_TOKEN": "123:tg-token", "PF_TG_SECRET": "tg-secret-token", "PF_FS_ID": "cli_app",
           "PF_FS_SECRET": "fs-secret", "PF_FS_VERIFY": "fs-verify-token", "PF_FS_ENCRYPT": "fs-encrypt-key",
           "PF_HOOK_SECRET": "hook-secret", "PF_DISCORD_TOKEN": "discord-token", "PF_DISCORD_WRONG": "revoked"}


def _config(api: str, discord: str) -> str:
    return f"""
[channels.dsc]
type = "discord"
model = "echo"
bot_token_env = "PF_DISCORD_TOKEN"
api_base = "{discord}/api/v10"

[channels.dsc_refused]
type = "discord"
model = "echo"
bot_token_env = "PF_DISCORD_WRONG"
api_base = "{discord}/api/v10"

[channels.slack]
type = "slack"
model = "echo"
bot_token_env = "PF_SLACK_TOKEN"
signing_secret_env = "PF_SLACK_SIGNING"
api_base = "{api}/slack"
allow_chats = ["C1"]
session = "thread"

[channels.tg]
type = "telegram"
model = "echo"
bot_token_env = "PF_TG_TOKEN"
secret_token_env = "PF_TG_SECRET"
api_base = "{api}"
rate_per_minute = 2

[channels.lark]
type = "feishu"
model = "echo"
app_id_env = "PF_FS_ID"
app_secret_env = "PF_FS_SECRET"
verification_token_env = "PF_FS_VERIFY"
encrypt_key_env = "PF_FS_ENCRYPT"
api_base = "{api}"

[channels.hook]
type = "webhook"
model = "echo"
secret_env = "PF_HOOK_SECRET"
api_base = "{api}/hook"

[channels.unpublished]
type = "webhook"
model = "nobody-published-this"
secret_env = "PF_HOOK_SECRET"
api_base = "{api}/hook"

[channels.nokey]
type = "telegram"
model = "echo"
bot_token_env = "PF_TG_TOKEN_NOT_SET"
secret_token_env = "PF_TG_SECRET"
"""


@pytest.fixture(scope="module")
def discord_api() -> Iterator[DiscordAPI]:
    discord = DiscordAPI(token=SECRETS["PF_DISCORD_TOKEN"]).start()
    yield discord
    discord.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, discord_api: DiscordAPI) -> Iterator[tuple[LiveServer, PlatformAPI]]:
    api = PlatformAPI().start()
    home = tmp_path_factory.mktemp("channels")
    (home / "config.toml").write_text(_config(api.url, discord_api.url))
    workflows = home / "user" / "default" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "echo.json").write_text(json.dumps(_published("echo")))
    saved = {k: os.environ.get(k) for k in SECRETS}
    os.environ.update(SECRETS)
    engine = Engine(home=home, builtin_packs=("core",))
    from partyflow.channels import channels_extension

    live = start_server(engine, ServerConfig(port=0, shutdown_grace_s=1.0),
                        extensions=(channels_extension(engine), frontend_extension()))
    yield live, api
    live.stop()
    engine.close()
    api.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _slack(live: LiveServer, event: dict, *, secret: str = SECRETS["PF_SLACK_SIGNING"], age: float = 0,
           retry: bool = False) -> requests.Response:
    body = json.dumps(event).encode()
    timestamp = str(int(time.time() - age))
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": timestamp,
               "X-Slack-Signature": signature, **({"X-Slack-Retry-Num": "1"} if retry else {})}
    return requests.post(live.url + "/channels/slack/events", data=body, headers=headers, timeout=30)


def _slack_message(event_id: str, text: str, channel: str = "C1") -> dict:
    return {"type": "event_callback", "event_id": event_id, "team_id": "T1",
            "event": {"type": "message", "channel": channel, "user": "U1", "text": text, "ts": f"17000.{event_id}"}}


def test_slack_challenge_signature_replay_redelivery_and_allow_list(world: tuple[LiveServer, PlatformAPI]) -> None:
    live, api = world
    challenge = _slack(live, {"type": "url_verification", "challenge": "abc123", "token": "x"})
    assert challenge.status_code == 200 and challenge.json() == {"challenge": "abc123"}
    assert _slack(live, _slack_message("E1", "hi"), secret="forged").status_code == 401
    assert _slack(live, _slack_message("E1", "hi"), age=600).status_code == 401  # replayed five minutes late
    api.rate_limit_once.add("/slack/chat.postMessage")  # Slack answers 429 once: the SDK waits and retries
    started = time.monotonic()
    assert _slack(live, _slack_message("E1", "hi")).status_code == 200
    assert time.monotonic() - started < 3  # acknowledged within Slack's deadline, answered afterwards
    assert _slack(live, _slack_message("E1", "hi"), retry=True).status_code == 200  # a redelivery
    assert _slack(live, _slack_message("E2", "psst", channel="C-other")).status_code == 200  # not allowed
    [posted] = api.wait_for("/slack/chat.postMessage")
    assert posted.body["channel"] == "C1" and posted.body["text"] == "You said: hi"
    assert posted.body["thread_ts"] == "17000.E1"  # session = thread: answers stay in the thread
    assert posted.headers["Authorization"] == "Bearer xoxb-test"
    assert _slack(live, _slack_message("E3", "x" * 5000)).status_code == 200
    long = api.wait_for("/slack/chat.postMessage", 3)[1:]
    assert [len(c.body["text"]) <= 3900 for c in long] == [True, True]
    assert "".join(c.body["text"] for c in long).replace(" ", "") == ("You said: " + "x" * 5000).replace(" ", "")
    assert all("psst" not in c.body["text"] for c in api.matching("chat.postMessage"))


def _telegram(live: LiveServer, update: dict, secret: str = SECRETS["PF_TG_SECRET"]) -> requests.Response:
    return requests.post(live.url + "/channels/tg/events", json=update, timeout=30,
                         headers={"X-Telegram-Bot-Api-Secret-Token": secret})


def _tg_update(update_id: int, text: str, chat: int = 555) -> dict:
    return {"update_id": update_id, "message": {"message_id": update_id, "date": 1700000000, "text": text,
                                                "chat": {"id": chat, "type": "private"},
                                                "from": {"id": 9, "is_bot": False, "first_name": "Ada"}}}


def test_telegram_secret_typing_memory_and_rate_limit(world: tuple[LiveServer, PlatformAPI]) -> None:
    live, api = world
    assert _telegram(live, _tg_update(1, "hello"), secret="wrong").status_code == 401
    assert _telegram(live, _tg_update(1, "hello")).status_code == 200
    [sent] = api.wait_for("sendMessage")
    assert sent.path == "/bot123:tg-token/sendMessage" and sent.body["text"] == "You said: hello"
    assert str(sent.body["chat_id"]) == "555"
    assert api.matching("sendChatAction")[0].body["action"] == "typing"
    assert _telegram(live, _tg_update(2, "again")).status_code == 200
    api.wait_for("sendMessage", 2)
    assert _telegram(live, _tg_update(3, "third")).status_code == 200  # over rate_per_minute = 2
    told = api.wait_for("sendMessage", 3)[-1]
    assert "wait a minute" in told.body["text"]
    with SessionStore.open(live.engine.home.state_db) as memory:
        session = memory.session("channel:tg:555")
        messages = memory.messages("channel:tg:555")
    assert [m.content for m in messages] == ["hello", "You said: hello", "again", "You said: again"]
    assert session is not None and session.metadata["workflow"] == "echo"
    assert messages[0].name == "9"  # who spoke, in the memory itself
    turns = requests.get(live.url + "/channels/history", params={"channel": "tg"}, timeout=30).json()["turns"]
    assert [(t["text"], t["status"]) for t in turns] == [("third", "rate limited"), ("again", "answered"),
                                                         ("hello", "answered")]  # newest first
    turns = turns[1:]
    assert turns[1] | {"received": 0, "answered": 0, "prompt_id": "", "prompt_tokens": 0, "completion_tokens": 0} == {
        "channel": "tg", "platform": "telegram", "session": "channel:tg:555", "chat": "555", "user": "9",
        "event_id": "1", "workflow": "echo", "status": "answered", "text": "hello", "answer": "You said: hello",
        "attachments": [], "cost": None, "estimated": True, "received": 0, "answered": 0, "prompt_id": "", "prompt_tokens": 0,
        "completion_tokens": 0}
    assert turns[1]["prompt_tokens"] > 0 and turns[1]["answered"] >= turns[1]["received"] > 0
    assert requests.get(live.url + "/channels/history", params={"limit": "lots"}, timeout=30).status_code == 400
    shown = subprocess.run([sys.executable, "-m", "partyflow", "channels", "history", "tg", "--json", "--home",
                            str(live.engine.home.root)], capture_output=True, text=True, timeout=120)
    assert [t["text"] for t in json.loads(shown.stdout)] == ["third", "again", "hello"]


def _encrypt(key: str, text: str) -> str:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    data = padder.update(text.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(hashlib.sha256(key.encode()).digest()), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(data) + encryptor.finalize()).decode()


def _feishu(live: LiveServer, event: dict, *, token: str = SECRETS["PF_FS_VERIFY"]) -> requests.Response:
    event = {**event, **({"token": token} if event.get("type") == "url_verification" else {})}
    if "header" in event:
        event["header"]["token"] = token
    body = json.dumps({"encrypt": _encrypt(SECRETS["PF_FS_ENCRYPT"], json.dumps(event))}).encode()
    timestamp, nonce = str(int(time.time())), "n1"
    signature = hashlib.sha256(f"{timestamp}{nonce}{SECRETS['PF_FS_ENCRYPT']}".encode() + body).hexdigest()
    return requests.post(live.url + "/channels/lark/events", data=body, timeout=30, headers={
        "Content-Type": "application/json", "X-Lark-Request-Timestamp": timestamp, "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": signature})


def test_feishu_encrypted_events_with_verification_token(world: tuple[LiveServer, PlatformAPI]) -> None:
    live, api = world
    challenge = _feishu(live, {"type": "url_verification", "challenge": "c-42"})
    assert challenge.json() == {"challenge": "c-42"}
    event = {"schema": "2.0", "header": {"event_id": "ev1", "event_type": "im.message.receive_v1"},
             "event": {"sender": {"sender_id": {"open_id": "ou_1"}},
                       "message": {"chat_id": "oc_1", "message_id": "om_0", "message_type": "text",
                                   "content": json.dumps({"text": "ni hao"})}}}
    assert _feishu(live, json.loads(json.dumps(event)), token="wrong").status_code == 401
    assert _feishu(live, event).status_code == 200
    [sent] = api.wait_for("/open-apis/im/v1/messages")
    assert sent.body["receive_id"] == "oc_1" and json.loads(sent.body["content"]) == {"text": "You said: ni hao"}
    assert sent.headers["Authorization"] == "Bearer t-test"


def test_signed_webhooks_both_ways(world: tuple[LiveServer, PlatformAPI]) -> None:
    live, api = world
    body = json.dumps({"id": "m1", "chat": "room", "user": "u", "text": "ping"}).encode()

    def post(timestamp: str, secret: str = SECRETS["PF_HOOK_SECRET"]) -> requests.Response:
        signature = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return requests.post(live.url + "/channels/hook/events", data=body, timeout=30, headers={
            "X-Partyflow-Timestamp": timestamp, "X-Partyflow-Signature": signature})

    assert post(str(int(time.time())), secret="forged").status_code == 401
    assert post(str(int(time.time()) - 3600)).status_code == 401
    assert post(str(int(time.time()))).status_code == 200
    [reply] = api.wait_for("/hook")
    assert reply.body == {"chat": "room", "in_reply_to": "m1", "text": "You said: ping"}
    expected = "sha256=" + hmac.new(SECRETS["PF_HOOK_SECRET"].encode(), reply.headers["X-Partyflow-Timestamp"].encode()
                                    + b"." + json.dumps(reply.body).encode(), hashlib.sha256).hexdigest()
    assert reply.headers["X-Partyflow-Signature"] == expected
    unknown = requests.post(live.url + "/channels/unpublished/events", data=body, timeout=30)
    assert unknown.status_code == 404  # not running: its workflow is not published; the others work


def test_channels_cli_names_what_is_wrong(world: tuple[LiveServer, PlatformAPI]) -> None:
    live, _ = world
    home = str(live.engine.home.root)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "partyflow", "channels", *args, "--home", home],
                              capture_output=True, text=True, timeout=120, env={**os.environ})

    assert cli("test", "slack").returncode == 0  # including Slack's auth.test with the bot token
    refused = cli("test", "dsc_refused")  # Discord answers 401 to GET /users/@me: said before anything runs
    assert refused.returncode == 2 and "refused the credentials" in refused.stderr
    missing = cli("test", "nokey")
    assert missing.returncode == 2 and "PF_TG_TOKEN_NOT_SET" in missing.stderr
    unpublished = cli("test", "unpublished")
    assert unpublished.returncode == 2 and "no published workflow 'nobody-published-this'" in unpublished.stderr
    listed = json.loads(cli("list", "--json").stdout)
    assert {row["name"] for row in listed} >= {"slack", "tg", "lark", "hook"}
    assert all(SECRETS["PF_SLACK_TOKEN"] not in json.dumps(row) for row in listed)  # names, never values


def test_config_refuses_secret_values_and_typos() -> None:
    with pytest.raises(ChannelConfigError, match="secrets never go in config.toml"):
        load_channels({"channels": {"x": {"type": "slack", "model": "m", "bot_token": "xoxb-real",
                                          "signing_secret_env": "S"}}})
    with pytest.raises(ChannelConfigError, match="type must be one of"):
        load_channels({"channels": {"x": {"type": "slak", "model": "m"}}})
    assert split_text("a " * 10, 6) == ["a a a", "a a a", "a a a", "a"]
    assert decrypt("k", _encrypt("k", "secret text")) == "secret text"


def test_discord_connects_from_serve_and_a_refused_token_stops_only_its_channel(
        world: tuple[LiveServer, PlatformAPI], discord_api: DiscordAPI) -> None:
    live, _ = world
    [identify] = discord_api.wait_for("gateway:op2")  # only the channel whose token Discord accepted connects
    assert identify.body["d"]["token"] == SECRETS["PF_DISCORD_TOKEN"]
    refused = [c for c in discord_api.wait_for("/api/v10/users/@me", 2) if c.status == 401]
    assert refused and {c.headers["Authorization"] for c in refused} == {"Bot revoked"}
    discord_api.dispatch("MESSAGE_CREATE", message_create(3001, "from serve", channel="750", guild="751"))
    [posted] = discord_api.wait_for("/api/v10/channels/750/messages")
    assert posted.body["content"] == "You said: from serve"
    webhook = requests.post(live.url + "/channels/dsc/events", json={}, timeout=30)
    assert webhook.status_code == 404  # Discord messages come over the gateway, not to the events route
