"""The LLM node pack in real workflows: a real engine, a real config.toml and a loopback OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest
from tests.support.openai_server import (
    OpenAIServer,
    Recorded,
    Reply,
    chunk,
    text_stream,
    usage_chunk,
)
from tests.support.providers import (
    chat,
    engine_fixture,
    fresh_server_fixture,
    loader,
    node,
    openai_table,
    running_server_fixture,
    write_config,
)

from partyflow import Engine
from partyflow.engine.events import CustomMessage, Event

KEY = "sk-loopback-0123456789abcdefghijkl"
KEY_ENV = "PARTYFLOW_TEST_LOOP_KEY"
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


# The server's listen backlog is raised (see _QuietServer): 32 simultaneous connects must not be reset.
running_server = running_server_fixture()
server = fresh_server_fixture()
engine = engine_fixture()


@pytest.fixture
def home(tmp_path: Path, server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(KEY_ENV, KEY)
    return write_config(tmp_path / "home", openai_table("loop", server.url, key_env=KEY_ENV,
                                                        embedding_model="tiny-embed"))


def chat_bodies(server: OpenAIServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.path.endswith("/chat/completions")]


def test_loader_chat_parse_display(engine: Engine, server: OpenAIServer) -> None:
    reply = 'Sure! Here it is:\n```json\n{"city": "Paris", "days": [1, 2]}\n```\nAnything else?'
    server.script(Reply.stream(text_stream([reply[:20], reply[20:]])))
    prompt = {
        "model": loader(),
        "chat": chat("Plan a trip", system="You answer in JSON."),
        "parse": node("ParseJSONFromReply", reply=["chat", 0]),
        "dump": node("JSONDump", data=["parse", 0], indent=0, sort_keys=True),
        "show": node("DisplayText", text=["dump", 0]),
    }
    result = engine.run(prompt)
    assert result.ok, result.error
    assert result.output("parse") == {"city": "Paris", "days": [1, 2]}
    assert result.outputs["show"] == {"text": ['{"city":"Paris","days":[1,2]}']}
    body = chat_bodies(server)[0]
    assert body["model"] == "tiny-chat" and body["stream"] is True
    assert body["messages"] == [{"role": "system", "content": "You answer in JSON."},
                                {"role": "user", "content": "Plan a trip"}]
    usage = result.output("chat", 3)
    assert usage["provider"] == "loop" and usage["model"] == "tiny-chat" and usage["finish_reason"] == "stop"
    assert usage["prompt_tokens"] == 7 and usage["completion_tokens"] == 2


def test_request_options_and_model_override(engine: Engine, server: OpenAIServer) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    server.script(Reply.stream(text_stream(['{"ok": true}'])))
    prompt = {"model": loader(model="other-model"),
              "chat": chat("Answer", temperature=0.0, max_tokens=64, seed=7, json_schema=json.dumps(schema)),
              "show": node("DisplayText", text=["chat", 0])}
    result = engine.run(prompt)
    assert result.ok, result.error
    body = chat_bodies(server)[0]
    assert body["model"] == "other-model" and body["temperature"] == 0.0 and body["seed"] == 7
    assert body["max_tokens"] == 64 or body.get("max_completion_tokens") == 64
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == schema


def test_history_flows_between_chat_nodes(engine: Engine, server: OpenAIServer) -> None:
    prompt = {
        "model": loader(),
        "first": chat("first question", system="Be brief."),
        "second": chat("second question", history=["first", 1]),
        "show": node("DisplayText", text=["second", 0]),
    }
    result = engine.run(prompt)
    assert result.ok, result.error
    first, second = chat_bodies(server)
    assert first["messages"][-1] == {"role": "user", "content": "first question"}
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert second["messages"][2]["content"] == "echo: first question"
    history = result.output("second", 1)
    assert [m["role"] for m in history] == ["system", "user", "assistant", "user", "assistant"]
    assert history[-1]["content"] == "echo: second question"
    json.dumps(history)  # history is plain JSON, so it saves and reloads


def test_tool_calls_come_out_parsed(engine: Engine, server: OpenAIServer) -> None:
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"ci'}}
    server.script(Reply.stream([
        chunk({"role": "assistant", "tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]}),
        chunk({}, finish_reason="tool_calls"), usage_chunk(),
    ]))
    prompt = {
        "model": loader(),
        "tool": node("ToolDefinition", name="weather", description="Current weather in a city.",
                     parameters=json.dumps(WEATHER_SCHEMA)),
        "chat": chat("Weather in Paris?", tools=["tool", 0]),
        "show": node("DisplayValue", value=["chat", 2]),
    }
    result = engine.run(prompt)
    assert result.ok, result.error
    assert result.output("chat", 2) == [{"id": "call_1", "name": "weather", "arguments": {"city": "Paris"}}]
    sent = chat_bodies(server)[0]["tools"]
    assert [t["function"]["name"] for t in sent] == ["weather"]
    assert sent[0]["function"]["parameters"] == WEATHER_SCHEMA
    assistant = result.output("chat", 1)[-1]
    assert assistant["role"] == "assistant" and assistant["tool_calls"][0]["name"] == "weather"
    assert result.output("chat", 3)["finish_reason"] == "tool_calls"


def test_streamed_text_arrives_as_custom_messages_in_order(engine: Engine, server: OpenAIServer) -> None:
    pieces = ["Once ", "upon ", "a ", "time."]
    server.script(Reply.stream(text_stream(pieces)))
    events: list[Event] = []
    prompt = {"model": loader(), "story": chat("Tell a story"), "show": node("DisplayText", text=["story", 0])}
    result = engine.run(prompt, sinks=[events.append])
    assert result.ok, result.error
    streamed = [e for e in events if isinstance(e, CustomMessage) and e.event == "partyflow.llm.stream"]
    assert [e.data for e in streamed] == [{"node": "story", "text": piece} for piece in pieces]
    assert all(e.prompt_id == result.prompt_id for e in streamed)
    assert result.output("story") == "Once upon a time."


def test_non_streaming_chat(engine: Engine, server: OpenAIServer) -> None:
    events: list[Event] = []
    prompt = {"model": loader(), "chat": chat("plain", stream=False), "show": node("DisplayText", text=["chat", 0])}
    result = engine.run(prompt, sinks=[events.append])
    assert result.ok, result.error
    assert result.output("chat") == "echo: plain"
    assert "stream" not in chat_bodies(server)[0]
    custom = [e for e in events if isinstance(e, CustomMessage)]
    assert [e.event for e in custom] == ["partyflow.llm.usage"]  # no stream deltas, only the usage report
    assert custom[0].data["prompt_tokens"] == 7 and custom[0].data["node"] == "chat"


def test_32_chat_nodes_are_in_flight_together(engine: Engine, server: OpenAIServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    count = 32
    barrier = threading.Barrier(count, timeout=15)  # releases only when all 32 requests are at the server at once
    lock = threading.Lock()
    in_flight = {"now": 0, "max": 0}
    record = server.record

    def gated(request: Recorded) -> Reply | None:
        reply = record(request)
        with lock:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
        try:
            barrier.wait()
        finally:
            with lock:
                in_flight["now"] -= 1
        return reply

    monkeypatch.setattr(server, "record", gated)
    prompt: dict[str, Any] = {"model": loader()}
    for i in range(count):
        prompt[f"c{i}"] = chat(f"question {i}")
        prompt[f"s{i}"] = node("DisplayText", text=[f"c{i}", 0])
    result = engine.run(prompt)
    assert result.ok, result.error
    assert in_flight["max"] == count
    assert sorted(result.output(f"c{i}") for i in range(count)) == sorted(f"echo: question {i}" for i in range(count))


def test_embeddings(engine: Engine, server: OpenAIServer) -> None:
    prompt = {"model": loader(),
              "embed": node("LLMEmbeddings", model=["model", 0], text="alpha\n\nbeta", one_per_line=True),
              "show": node("DisplayValue", value=["embed", 0])}
    result = engine.run(prompt)
    assert result.ok, result.error
    vectors = result.output("embed")
    assert len(vectors) == 2 and all(len(v) == 4 for v in vectors)
    body = [r.body for r in server.requests if r.path.endswith("/embeddings")][0]
    assert body["model"] == "tiny-embed" and body["input"] == ["alpha", "beta"]


def test_reply_without_json_fails_clearly(engine: Engine, server: OpenAIServer) -> None:
    server.script(Reply.stream(text_stream(["I would rather not."])))
    prompt = {"model": loader(), "chat": chat("json please"), "parse": node("ParseJSONFromReply", reply=["chat", 0]),
              "show": node("DisplayValue", value=["parse", 0])}
    result = engine.run(prompt)
    assert not result.ok
    assert result.error.node_id == "parse"
    assert "no JSON object or array found" in result.error.message and "I would rather not" in result.error.message


def test_unknown_provider_is_refused_at_validation(engine: Engine) -> None:
    check = engine.validate({"model": loader("nope"), "chat": chat("hi"), "show": node("DisplayText", text=["chat", 0])})
    assert not check.ok
    assert "unknown provider 'nope' (configured: loop)" in json.dumps(check.node_errors)


def test_missing_key_variable_names_it(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    result = engine.run({"model": loader(), "chat": chat("hi"), "show": node("DisplayText", text=["chat", 0])})
    assert not result.ok and result.error.node_id == "model"
    assert f"${KEY_ENV} is not set" in result.error.message


def test_401_fails_the_run_naming_provider_and_model(engine: Engine, server: OpenAIServer) -> None:
    server.script(Reply.error(401, f"Incorrect API key provided: {KEY}"))
    result = engine.run({"model": loader(), "chat": chat("hi"), "show": node("DisplayText", text=["chat", 0])})
    assert not result.ok
    assert result.error.node_id == "chat"
    message = result.error.message
    assert "provider 'loop'" in message and "model 'tiny-chat'" in message and "HTTP 401" in message
    assert KEY_ENV in message and KEY not in message


def test_api_key_never_leaves_the_provider(engine: Engine, server: OpenAIServer,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ok_prompt = {"model": loader(), "first": chat("hello", system="sys"),
                 "second": chat("again", history=["first", 1]), "show": node("DisplayText", text=["second", 0]),
                 "usage": node("DisplayValue", value=["second", 3])}
    failing_prompt = {"model": loader(), "chat": chat("hi"), "show": node("DisplayText", text=["chat", 0])}
    direct = engine.run(ok_prompt)
    assert direct.ok, direct.error
    engine.clear_cache()  # the queued copy must call the server again, not reuse the direct run's outputs
    engine.submit(ok_prompt)
    engine.submit(failing_prompt)
    server.script(Reply.stream(text_stream(["fine"])), Reply.stream(text_stream(["fine"])),
                  Reply.error(401, f"bad key {KEY}"))
    queued = asyncio.run(engine.drain())
    assert [r.status for r in queued] == ["success", "error"]
    assert server.requests and all(r.headers.get("authorization") == f"Bearer {KEY}" for r in server.requests)

    places = {
        "run results": pickle.dumps([direct, *queued]) + repr([direct, *queued]).encode(),
        "queue history": json.dumps(engine.queue.history(), default=repr).encode(),
        "saved prompts": json.dumps([ok_prompt, failing_prompt]).encode(),
        "logs": caplog.text.encode(),
    }
    for place, data in places.items():
        assert KEY.encode() not in data, f"the API key leaked into the {place}"


@pytest.mark.parametrize("reply, expected", [
    ('{"a": 1}', {"a": 1}),
    ("Here you go:\n```json\n[1, 2, 3]\n```", [1, 2, 3]),
    ("```\n{\"fenced\": true}\n```\nand later {\"other\": 1}", {"fenced": True}),
    ("Use {name} placeholders; the answer is {\"name\": \"Ada\"}.", {"name": "Ada"}),
    ("```python\nprint('no json')\n```\nAnswer: {\"ok\": true}", {"ok": True}),
], ids=["bare", "json-fence", "fence-first", "prose-braces", "json-after-code"])
def test_parse_json_from_reply_finds_the_json(engine: Engine, reply: str, expected: Any) -> None:
    result = engine.run({"reply": node("MultilineText", value=reply),
                         "parse": node("ParseJSONFromReply", reply=["reply", 0]),
                         "show": node("DisplayValue", value=["parse", 0])})
    assert result.ok, result.error
    assert result.output("parse") == expected
