"""Published workflows behind the OpenAI wire format, called with the real `openai` client over 127.0.0.1."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from aiohttp import web
from tests.server_openai.live_server import LiveServer
from tests.server_openai.workflows import chat_workflow, echo_workflow, save, ui_node, ui_workflow
from tests.support.openai_server import OpenAIServer
from tests.support.providers import openai_table, running_server_fixture, write_config

from partyflow import Engine
from partyflow.server.app import create_app
from partyflow.server.config import ServerConfig
from partyflow.server.openai_api import openai_extension

KEY_ENV = "PARTYFLOW_TEST_OPENAI_API_KEY"


upstream = running_server_fixture("upstream")


@pytest.fixture
def home(tmp_path: Path, upstream: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    upstream.reset()
    home = write_config(tmp_path / "home", openai_table("loop", upstream.url, key_env=KEY_ENV))
    monkeypatch.setenv(KEY_ENV, "sk-loopback-0123456789abcdef")
    save(home, "echo", echo_workflow())
    save(home, "chat", chat_workflow())
    save(home, "draft", {**echo_workflow(), "extra": {}})  # not published
    return home


TOKEN = "server-token-0123456789"


def make_app(engine: Engine) -> web.Application:
    return create_app(engine, ServerConfig(port=0, token=TOKEN), extensions=[openai_extension(engine)])


@pytest.fixture
def server(home: Path) -> Iterator[LiveServer]:
    engine = Engine(home=home, load_custom_nodes=False)
    try:
        with LiveServer(lambda: make_app(engine)) as live:
            yield live
    finally:
        engine.close()


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0, timeout=30)


def test_the_servers_token_applies(server: LiveServer) -> None:
    stranger = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong-token-000", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()
    with pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])


def test_lists_published_workflows_only(client: openai.OpenAI) -> None:
    models = sorted(m.id for m in client.models.list())
    assert models == ["assistant", "echo"]
    assert client.models.retrieve("echo").owned_by == "partyflow"


def test_plain_completion_of_a_core_workflow(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hello {there}"}])
    assert reply.choices[0].message.content == "you said: hello {there}"
    assert reply.choices[0].finish_reason == "stop"
    # no usage outputs in this workflow: estimated at one token per four characters
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (4, 6)


def test_streaming_a_core_workflow_sends_one_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}], stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert texts == ["you said: hi"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_chat_workflow_maps_history_and_reports_usage(client: openai.OpenAI, upstream: OpenAIServer) -> None:
    reply = client.chat.completions.create(model="assistant", messages=[
        {"role": "system", "content": "ignored: the workflow's system prompt wins"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "echo: first"},
        {"role": "user", "content": "second question"},
    ])
    assert reply.choices[0].message.content == "echo: second question"
    sent = [r.body for r in upstream.requests if r.path.endswith("/chat/completions")][0]
    assert sent["messages"] == [{"role": "system", "content": "You are terse."},
                                {"role": "user", "content": "first"},
                                {"role": "assistant", "content": "echo: first"},
                                {"role": "user", "content": "second question"}]
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 7 and reply.usage.completion_tokens == 3  # from the Chat node's usage


def test_streaming_forwards_the_chat_nodes_tokens(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="assistant", stream=True,
                                            messages=[{"role": "user", "content": "tell me three words"}])
    deltas = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert deltas == ["echo: ", "tell ", "me ", "three ", "words"]


def test_unknown_model_is_a_404_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="draft", messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


@pytest.mark.parametrize("body, param", [
    ({"model": "echo"}, "messages"),
    ({"model": "echo", "messages": []}, "messages"),
    ({"model": "echo", "messages": [{"role": "assistant", "content": "no user turn"}]}, "messages"),
    ({"model": "echo", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": "echo", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": "echo", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
])
def test_bad_bodies_are_400s_in_openai_shape(client: openai.OpenAI, body: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/chat/completions", body=body, cast_to=object)
    assert caught.value.param == param
    assert isinstance(caught.value.body, dict) and caught.value.body["type"] == "invalid_request_error"


def test_body_that_is_not_json(server: LiveServer) -> None:
    answer = httpx.post(f"{server.url}/v1/chat/completions", content=b"{not json", timeout=10,
                        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 400
    assert json.loads(answer.text)["error"]["type"] == "invalid_request_error"


def test_failing_workflow_is_a_server_error(home: Path, client: openai.OpenAI) -> None:
    save(home, "broken", chat_workflow(model="broken", provider="missing"))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "x"}])
    assert "missing" in str(caught.value)


def test_workflow_failing_while_it_runs_names_the_node(home: Path, client: openai.OpenAI) -> None:
    nodes = [
        ui_node(1, "JSONParse", [""], outputs=[("data", "JSON", [1])]),
        ui_node(2, "DisplayValue", [], inputs=[("value", "*", 1)], outputs=[("text", "STRING", [])]),
    ]
    save(home, "parser", ui_workflow(nodes, [[1, 1, 0, 2, 0, "JSON"]],
                                     {"model": "parser", "input": {"node": 1, "input": "text"}, "output": {"node": 2}}))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="parser", messages=[{"role": "user", "content": "not json"}])
    assert "in node 1 (JSONParse)" in str(caught.value)


def test_llm_tokens_reach_the_metrics(server: LiveServer, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "count me"}])
    request = urllib.request.Request(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request) as response:
        metrics = response.read().decode()
    prompt_line = next(line for line in metrics.splitlines()
                       if line.startswith("partyflow_llm_tokens_total") and 'kind="prompt"' in line)
    assert float(prompt_line.rsplit(" ", 1)[1]) == 7  # the scripted upstream reports 7 prompt tokens
