"""Feishu/Lark long connection (issue 16): `run_polling` (what `partyflow channels run` does) starts lark-oapi's real
websocket client in a child process against a loopback Feishu speaking the pbbp2 frame protocol; events arrive as
data frames, are acknowledged, deduplicated by event id, filtered by the allow-lists and answered by the published
workflow with the conversation's memory through the Open API. A crashed child is restarted; refused credentials
end that channel only."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from tests.channels.feishu_ws import SERVICE_ID, FeishuAPI, receive_event
from tests.server.test_access import _published

from partyflow import Engine
from partyflow.channels.config import ChannelConfigError, parse_channel
from partyflow.channels.service import Channels, run_polling
from partyflow.memory import SessionStore

SECRETS = {"PF_FSWS_ID": "cli_party", "PF_FSWS_SECRET": "fs-app-secret-123", "PF_FSWS_OTHER": "cli_other",
           "PF_FSWS_BAD": "not-the-secret"}
MESSAGES = "/open-apis/im/v1/messages"


@dataclass
class Running:
    engine: Engine
    feishu: FeishuAPI
    stop: asyncio.Event
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    result: dict[str, Channels]


def _children(secret_variable: str) -> list[int]:
    """Our long-connection child processes for one channel (found through /proc: the test has no handle)."""
    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if any(arg.endswith(b"feishu_ws_child.py") for arg in command) and secret_variable.encode() in command:
                found.append(int(pid))
    return found


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    feishu = FeishuAPI(app_id=SECRETS["PF_FSWS_ID"], app_secret=SECRETS["PF_FSWS_SECRET"]).start()
    home: Path = tmp_path_factory.mktemp("feishu-ws")
    (home / "config.toml").write_text(f"""
[channels.lark]
type = "feishu"
mode = "long_connection"
model = "echo"
app_id_env = "PF_FSWS_ID"
app_secret_env = "PF_FSWS_SECRET"
api_base = "{feishu.url}"
allow_chats = ["oc_group1"]

[channels.wrongkey]
type = "feishu"
mode = "long_connection"
model = "echo"
app_id_env = "PF_FSWS_OTHER"
app_secret_env = "PF_FSWS_BAD"
api_base = "{feishu.url}"
""")
    workflows = home / "user" / "default" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "echo.json").write_text(json.dumps(_published("echo")))
    saved = {k: os.environ.get(k) for k in SECRETS}
    os.environ.update(SECRETS)
    engine = Engine(home=home, builtin_packs=("core", "comfy"))
    runner = asyncio.Runner()
    loop = runner.get_loop()
    stop = asyncio.Event()
    result: dict[str, Channels] = {}

    def serve() -> None:
        with runner:
            result["channels"] = runner.run(run_polling(engine, None, stop))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield Running(engine, feishu, stop, loop, thread, result)
    if thread.is_alive():  # not stopped by a test
        loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    engine.close()
    feishu.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_events_are_acknowledged_deduplicated_filtered_and_answered_with_memory(running: Running) -> None:
    feishu = running.feishu
    [connect] = feishu.wait_for("ws:connect", timeout=60)
    assert connect.body["service_id"] == str(SERVICE_ID) and connect.body["device_id"]
    [ping] = feishu.wait_for("ws:ping")  # the client pings at once; the stand-in answers with pong + ClientConfig
    assert ping.body["service"] == SERVICE_ID and ping.body["headers"] == {"type": "ping"}
    endpoints = feishu.wait_for("/callback/ws/endpoint", 2)  # both channels' children ask for an endpoint
    assert {(c.body["AppID"], c.body["AppSecret"]) for c in endpoints} == {
        (SECRETS["PF_FSWS_ID"], SECRETS["PF_FSWS_SECRET"]), (SECRETS["PF_FSWS_OTHER"], SECRETS["PF_FSWS_BAD"])}

    feishu.deliver(receive_event("ev-1", "hello"), "m-1")
    [first] = feishu.wait_for(MESSAGES)
    assert first.body["receive_id"] == "oc_group1" and first.body["msg_type"] == "text"
    assert json.loads(first.body["content"]) == {"text": "You said: hello"}
    assert first.body["receive_id_type"] == "chat_id" and first.headers["Authorization"] == "Bearer t-test"

    feishu.deliver(receive_event("ev-1", "hello"), "m-2")  # redelivered (same event id): acknowledged, not answered
    feishu.deliver(receive_event("ev-2", "let me in", chat="oc_intruder"), "m-3")  # not in allow_chats: ignored
    feishu.deliver(receive_event("ev-3", "again 你好"), "m-4", parts=2)  # one event in two frames (sum=2)
    answers = feishu.wait_for(MESSAGES, 2)
    assert json.loads(answers[1].body["content"]) == {"text": "You said: again 你好"}
    acks = feishu.wait_for("ws:ack", 4)
    for message_id in ("m-1", "m-2", "m-3", "m-4"):
        [ack] = feishu.acks(message_id)  # once per message (the split one when its last part arrived)
        assert ack["payload"]["code"] == 200 and ack["service"] == SERVICE_ID
        assert ack["headers"]["type"] == "event" and ack["headers"]["trace_id"] == f"trace-{message_id}"
        assert "biz_rt" in ack["headers"]
    assert feishu.acks("m-4")[0]["headers"]["seq"] == "1" and len(acks) == 4
    assert len(feishu.matching(MESSAGES)) == 2
    assert not any(c.body.get("receive_id") == "oc_intruder" for c in feishu.matching(MESSAGES))
    with SessionStore.open(running.engine.home.state_db) as memory:
        texts = [m.content for m in memory.messages("channel:lark:oc_group1")]
        session = memory.session("channel:lark:oc_group1")
    assert texts == ["hello", "You said: hello", "again 你好", "You said: again 你好"]
    assert session is not None and session.metadata["platform"] == "feishu" and session.metadata["user"] == "ou_ada"


def test_refused_credentials_end_that_channel_only_and_stop_ends_the_children(running: Running) -> None:
    running.feishu.wait_for("ws:connect", timeout=60)
    running.loop.call_soon_threadsafe(running.stop.set)
    running.thread.join(30)
    assert not running.thread.is_alive()
    problems = running.result["channels"].problems
    assert "refused the app credentials" in problems["wrongkey"] and "10014" in problems["wrongkey"]
    assert SECRETS["PF_FSWS_BAD"] not in problems["wrongkey"] and "lark" not in problems
    assert _children("PF_FSWS_SECRET") == [] and _children("PF_FSWS_BAD") == []  # stopped with the channels


def test_serve_holds_the_long_connection_and_restarts_a_crashed_child(tmp_path: Path) -> None:
    from tests.server.live import start_server

    from partyflow.channels import channels_extension
    from partyflow.server import ServerConfig

    feishu = FeishuAPI(app_id=SECRETS["PF_FSWS_ID"], app_secret=SECRETS["PF_FSWS_SECRET"]).start()
    (tmp_path / "config.toml").write_text(f"""
[channels.served]
type = "feishu"
mode = "long_connection"
model = "echo"
app_id_env = "PF_FSWS_ID"
app_secret_env = "PF_FSWS_SECRET"
api_base = "{feishu.url}"
""")
    workflows = tmp_path / "user" / "default" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "echo.json").write_text(json.dumps(_published("echo")))
    saved = {k: os.environ.get(k) for k in SECRETS}
    os.environ.update(SECRETS)
    engine = Engine(home=tmp_path, builtin_packs=("core",))
    live = start_server(engine, ServerConfig(port=0, shutdown_grace_s=1.0), extensions=(channels_extension(engine),))
    try:
        feishu.wait_for("ws:connect", timeout=60)
        refused = requests.post(live.url + "/channels/served/events", data=b"{}", timeout=30)
        assert refused.status_code == 404  # no HTTP events for a long-connection channel
        feishu.deliver(receive_event("sv-1", "first", chat="oc_served"), "s-1")
        [first] = feishu.wait_for(MESSAGES)
        assert json.loads(first.body["content"]) == {"text": "You said: first"}
        [child] = _children("PF_FSWS_SECRET")
        os.kill(child, signal.SIGKILL)  # the lark client's process dies: the channel starts a new one (after 1 s)
        feishu.wait_for("ws:connect", 2, timeout=60)
        [restarted] = _children("PF_FSWS_SECRET")
        assert restarted != child
        feishu.deliver(receive_event("sv-2", "still there?", chat="oc_served"), "s-2")
        answer = feishu.wait_for(MESSAGES, 2)[1]
        assert json.loads(answer.body["content"]) == {"text": "You said: still there?"}
        with SessionStore.open(engine.home.state_db) as memory:
            texts = [m.content for m in memory.messages("channel:served:oc_served")]
        assert texts == ["first", "You said: first", "still there?", "You said: still there?"]
    finally:
        live.stop()
        engine.close()
        feishu.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert _children("PF_FSWS_SECRET") == []


def test_long_connection_config_check_and_http_refusal(tmp_path: Path) -> None:
    from partyflow.channels.platforms import Feishu, Refused

    base = {"type": "feishu", "model": "m", "app_id_env": "PF_FSWS_ID", "app_secret_env": "PF_FSWS_SECRET"}
    with pytest.raises(ChannelConfigError, match="verification_token_env"):
        parse_channel("x", base)  # the HTTP event subscription needs the verification token
    with pytest.raises(ChannelConfigError, match='mode must be "event_subscription" or "long_connection"'):
        parse_channel("x", {**base, "mode": "websocket"})
    with pytest.raises(ChannelConfigError, match="mode is not a setting of slack"):
        parse_channel("x", {"type": "slack", "model": "m", "bot_token_env": "A", "signing_secret_env": "B",
                            "mode": "long_connection"})
    assert parse_channel("x", {**base, "mode": "long_connection"}).missing_credentials({}) == [
        "PF_FSWS_ID (app_id_env)", "PF_FSWS_SECRET (app_secret_env)"]  # `channels list`: no verification token
    feishu = FeishuAPI(app_id=SECRETS["PF_FSWS_ID"], app_secret=SECRETS["PF_FSWS_SECRET"]).start()
    saved = {k: os.environ.get(k) for k in SECRETS}
    os.environ.update(SECRETS)
    try:
        good = Feishu(parse_channel("x", {**base, "mode": "long_connection", "api_base": feishu.url}))
        bad = Feishu(parse_channel("x", {**base, "mode": "long_connection", "api_base": feishu.url,
                                         "app_secret_env": "PF_FSWS_BAD"}))
        assert good.listens and good.socket
        with pytest.raises(Refused) as refused:
            good.verify({}, b"{}")
        assert refused.value.status == 404
        asyncio.run(good.check())  # tenant_access_token/internal with the app id and secret
        with pytest.raises(RuntimeError, match="10014"):
            asyncio.run(bad.check())
    finally:
        feishu.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    tokens = [c.body for c in feishu.matching("/tenant_access_token/internal")]
    assert tokens == [{"app_id": "cli_party", "app_secret": "fs-app-secret-123"},
                      {"app_id": "cli_party", "app_secret": "not-the-secret"}]
