"""Traces of workflow runs (issue 18, item 6): a real engine exporting over OTLP/HTTP to a receiver on loopback that
decodes the protobuf requests, with chat calls answered by the scripted OpenAI-compatible server.

One prompt is one trace: a root `invoke_workflow` span, a child per executed node, a `chat {model}` CLIENT span
under the node that made the call (parallel branches run in worker threads and still land under their own node),
GenAI attributes from the semantic conventions, prompt and answer text only with `capture_content`, ERROR status
on failures, and a router's members as children of the router's span.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.openai_server import OpenAIServer, Reply, chat_completion
from tests.support.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.support.providers import node, openai_table, write_config

from partyflow import Engine
from partyflow.config import ConfigError
from partyflow.telemetry import parse_telemetry

KEY = "sk-otel-test-0123456789abcdefghijkl"
KEY_ENV = "PARTYFLOW_TEST_OTEL_KEY"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[OpenAIServer, OpenAIServer]]:
    with OpenAIServer() as first, OpenAIServer() as second:
        yield first, second


@pytest.fixture
def fresh(receiver: OTLPReceiver, servers: tuple[OpenAIServer, OpenAIServer]) -> OTLPReceiver:
    receiver.reset()
    for server in servers:
        server.reset()
    return receiver


def make_home(path: Path, receiver: OTLPReceiver, servers: tuple[OpenAIServer, OpenAIServer], *,
              capture: bool = False) -> Path:
    first, second = servers
    return write_config(
        path, openai_table("loop", first.url, model="tiny-chat", key_env=KEY_ENV, price_input_per_1k=1.0,
                           price_output_per_1k=2.0),
        openai_table("backup", second.url, model="backup-chat"),
        '[routers.smart]\nmembers = ["loop", "backup"]\n',
        f'[telemetry]\notlp_endpoint = "{receiver.url}"\nservice_name = "partyflow-test"\n'
        f'capture_content = {"true" if capture else "false"}\n')


def run_traced(home: Path, prompt: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(KEY_ENV, KEY)
    engine = Engine(home=home, load_custom_nodes=False)
    try:
        return engine.run(prompt)
    finally:
        engine.close()  # flushes: every span is at the receiver once this returns


def two_branches(provider: str = "loop") -> dict[str, Any]:
    return {"model": node("APIModelLoader", provider=provider, model=""),
            "left": node("LLMChat", model=["model", 0], system_prompt="be brief", user_prompt="left question",
                         stream=False),
            "right": node("LLMChat", model=["model", 0], system_prompt="be brief", user_prompt="right question",
                          stream=False),
            "show_left": node("DisplayValue", value=["left", 0]),
            "show_right": node("DisplayValue", value=["right", 0])}


def by_name(spans: list[ReceivedSpan], prefix: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name.startswith(prefix)]


def node_span(spans: list[ReceivedSpan], node_id: str) -> ReceivedSpan:
    (found,) = [s for s in spans if s.attributes.get("partyflow.node.id") == node_id]
    return found


def test_a_run_is_one_trace_with_a_span_per_node_and_per_model_call(
        fresh: OTLPReceiver, servers: tuple[OpenAIServer, OpenAIServer], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = servers
    # both answers are held back a little, so the two branches' calls are in flight together
    first.script(Reply.slow(0.3, Reply.json(chat_completion("echo: one", model="tiny-chat-0613"))),
                 Reply.slow(0.3, Reply.json(chat_completion("echo: two", model="tiny-chat-0613"))))
    result = run_traced(make_home(tmp_path / "home", fresh, servers), two_branches(), monkeypatch)
    assert result.ok, result.error

    spans = fresh.spans
    assert len({span.trace_id for span in spans}) == 1  # one workflow run, one trace
    (root,) = [span for span in spans if not span.parent_id]
    assert root.name == "invoke_workflow partyflow"
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert root.attributes["partyflow.prompt.id"] == result.prompt_id
    assert root.attributes["partyflow.status"] == "success" and not root.failed
    assert root.resource["service.name"] == "partyflow-test"

    nodes = by_name(spans, "execute_node ")
    assert {s.attributes["partyflow.node.id"] for s in nodes} == {"model", "left", "right", "show_left",
                                                                 "show_right"}
    assert all(s.parent_id == root.span_id for s in nodes)

    chats = by_name(spans, "chat ")
    assert len(chats) == 2
    for branch in ("left", "right"):
        parent = node_span(spans, branch)
        (call,) = [c for c in chats if c.parent_id == parent.span_id]  # each call under its own node
        attrs = call.attributes
        assert call.name == "chat tiny-chat" and call.kind == 3  # CLIENT
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "loop"  # a loopback server: named by its configuration
        assert attrs["gen_ai.request.model"] == "tiny-chat"
        assert attrs["gen_ai.response.model"] == "tiny-chat-0613"
        assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
        expected_cost = (attrs["gen_ai.usage.input_tokens"] * 1.0 + attrs["gen_ai.usage.output_tokens"] * 2.0) / 1000
        assert attrs["partyflow.cost"] == pytest.approx(expected_cost)
        assert attrs["partyflow.latency"] >= 0.3
        assert attrs["server.address"] == "127.0.0.1"
        # content is off by default: no prompt, no answer, anywhere
        assert not any(key in attrs for key in ("gen_ai.input.messages", "gen_ai.output.messages",
                                                "gen_ai.system_instructions"))
    assert not any("question" in json.dumps(s.attributes) for s in spans)
    left, right = node_span(spans, "left"), node_span(spans, "right")
    assert left.start_ns < right.end_ns and right.start_ns < left.end_ns  # the branches really ran together


def test_content_is_captured_only_when_enabled_and_never_a_key(
        fresh: OTLPReceiver, servers: tuple[OpenAIServer, OpenAIServer], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    prompt = two_branches()
    prompt["left"]["inputs"]["user_prompt"] = f"left question, my key is {KEY}"
    result = run_traced(make_home(tmp_path / "home", fresh, servers, capture=True), prompt, monkeypatch)
    assert result.ok, result.error
    chats = by_name(fresh.spans, "chat ")
    left_call = next(c for c in chats if c.parent_id == node_span(fresh.spans, "left").span_id)
    messages = json.loads(left_call.attributes["gen_ai.input.messages"])
    assert messages[0]["role"] == "user"
    assert messages[0]["parts"][0]["content"] == "left question, my key is [REDACTED]"
    assert json.loads(left_call.attributes["gen_ai.system_instructions"]) == [{"type": "text",
                                                                               "content": "be brief"}]
    output = json.loads(left_call.attributes["gen_ai.output.messages"])
    assert output[0]["role"] == "assistant" and output[0]["parts"][0]["content"].startswith("echo: left question")
    assert KEY not in json.dumps([s.attributes for s in fresh.spans])


def test_a_failing_call_marks_its_span_its_node_and_the_run_failed(
        fresh: OTLPReceiver, servers: tuple[OpenAIServer, OpenAIServer], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = servers
    first.script(Reply.error(400, "this request is malformed"))
    prompt = {"model": node("APIModelLoader", provider="loop", model=""),
              "ask": node("LLMChat", model=["model", 0], system_prompt="", user_prompt="hi", stream=False),
              "show": node("DisplayValue", value=["ask", 0])}
    result = run_traced(make_home(tmp_path / "home", fresh, servers), prompt, monkeypatch)
    assert not result.ok
    (call,) = by_name(fresh.spans, "chat ")
    assert call.failed and "malformed" in call.status_message
    assert call.attributes["error.type"] == "InvalidRequestError"
    assert call.attributes["http.response.status_code"] == 400
    assert any(name == "exception" for name, _ in call.events)
    ask = node_span(fresh.spans, "ask")
    assert ask.failed and call.parent_id == ask.span_id
    (root,) = [s for s in fresh.spans if not s.parent_id]
    assert root.failed and root.attributes["partyflow.status"] == "error"
    assert root.attributes["partyflow.failed_node.id"] == "ask"


def test_router_failover_shows_each_attempt_under_the_routers_span(
        fresh: OTLPReceiver, servers: tuple[OpenAIServer, OpenAIServer], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = servers
    first.script(Reply.error(500, "boom"))
    prompt = {"model": node("LLMRouterLoader", router="smart"),
              "ask": node("LLMChat", model=["model", 0], system_prompt="", user_prompt="hi", stream=True),
              "show": node("DisplayValue", value=["ask", 0])}
    result = run_traced(make_home(tmp_path / "home", fresh, servers), prompt, monkeypatch)
    assert result.ok, result.error
    ask = node_span(fresh.spans, "ask")
    (routed,) = [s for s in fresh.spans if s.parent_id == ask.span_id]
    assert routed.name == "chat smart" and routed.attributes["partyflow.router"] == "smart"
    assert routed.attributes["gen_ai.request.stream"] is True and not routed.failed
    assert routed.attributes["partyflow.response.provider"] == "backup"
    assert "gen_ai.usage.input_tokens" not in routed.attributes  # counted once, on the member's span
    attempts = sorted((s for s in fresh.spans if s.parent_id == routed.span_id), key=lambda s: s.start_ns)
    assert [(s.name, s.failed) for s in attempts] == [("chat tiny-chat", True), ("chat backup-chat", False)]
    assert attempts[0].attributes["http.response.status_code"] == 500
    assert attempts[1].attributes["gen_ai.usage.output_tokens"] > 0
    failovers = [attrs for name, attrs in routed.events if name == "partyflow.router.failover"]
    assert failovers and failovers[0]["partyflow.router.member"] == "loop"


def test_export_headers_come_from_the_environment(
        fresh: OTLPReceiver, servers: tuple[OpenAIServer, OpenAIServer], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    home = make_home(tmp_path / "home", fresh, servers)
    with (home / "config.toml").open("a", encoding="utf-8") as file:
        file.write('headers = { Authorization = "PARTYFLOW_TEST_OTLP_AUTH" }\n')
    monkeypatch.setenv("PARTYFLOW_TEST_OTLP_AUTH", "Basic cGs6c2s=")
    prompt = {"text": node("PrimitiveString", value="x"), "show": node("DisplayValue", value=["text", 0])}
    assert run_traced(home, prompt, monkeypatch).ok
    assert fresh.headers and all(h["authorization"] == "Basic cGs6c2s=" for h in fresh.headers)
    monkeypatch.delenv("PARTYFLOW_TEST_OTLP_AUTH")
    with pytest.raises(ConfigError, match="PARTYFLOW_TEST_OTLP_AUTH is not set"):
        Engine(home=home, load_custom_nodes=False)


@pytest.mark.parametrize(("table", "message"), [
    ({"otlp_endpoint": "ftp://x"}, "not an http"),
    ({}, "otlp_endpoint is required"),
    ({"otlp_endpoint": "http://u:p@127.0.0.1:4318"}, "must not carry credentials"),
    ({"otlp_endpoint": "http://127.0.0.1:4318", "capture": True}, "capture: not a known setting"),
    ({"otlp_endpoint": "http://127.0.0.1:4318", "capture_content": "yes"}, "capture_content must be"),
    ({"otlp_endpoint": "http://127.0.0.1:4318", "headers": {"Authorization": 3}}, "headers must map"),
])
def test_bad_telemetry_settings_are_named(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_telemetry({"telemetry": table})


def test_without_a_telemetry_table_nothing_is_traced(tmp_path: Path) -> None:
    assert parse_telemetry({}) is None
    assert parse_telemetry({"telemetry": {"enabled": False}}) is None
    engine = Engine(home=write_config(tmp_path / "home", ""), load_custom_nodes=False)
    try:
        assert engine._services.tracing is None
    finally:
        engine.close()


def test_embeddings_through_a_router_are_spans_with_each_attempt(
        fresh: OTLPReceiver, servers: tuple[OpenAIServer, OpenAIServer], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = servers
    first.script(Reply.error(500, "embedding backend down"))
    prompt = {"embed": node("KBEmbed", embedder="provider:smart/tiny-embed", text="first line\nsecond line"),
              "show": node("DisplayValue", value=["embed", 0])}
    result = run_traced(make_home(tmp_path / "home", fresh, servers), prompt, monkeypatch)
    assert result.ok, result.error
    embed = node_span(fresh.spans, "embed")
    (routed,) = [s for s in fresh.spans if s.parent_id == embed.span_id]
    assert routed.name == "embeddings tiny-embed" and routed.attributes["partyflow.router"] == "smart"
    assert routed.attributes["gen_ai.operation.name"] == "embeddings"
    assert routed.attributes["gen_ai.embeddings.dimension.count"] == 4
    attempts = sorted((s for s in fresh.spans if s.parent_id == routed.span_id), key=lambda s: s.start_ns)
    assert [(s.attributes["partyflow.provider"], s.failed) for s in attempts] == [("loop", True), ("backup", False)]
    assert attempts[1].attributes["gen_ai.usage.input_tokens"] == 2


NO_OTEL = """
import sys
from importlib.abc import MetaPathFinder

class Missing(MetaPathFinder):  # as if the `otel` extra were not installed
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())
from pathlib import Path
from partyflow import Engine
from partyflow.config import ConfigError

home = Path(sys.argv[1])
with Engine(home=home, load_custom_nodes=False) as engine:
    prompt = {"t": {"class_type": "PrimitiveString", "inputs": {"value": "x"}},
              "d": {"class_type": "DisplayValue", "inputs": {"value": ["t", 0]}}}
    assert engine.run(prompt).ok
assert not any(name.startswith("opentelemetry") for name in sys.modules)
(home / "config.toml").write_text('[telemetry]\\notlp_endpoint = "http://127.0.0.1:4318"\\n')
try:
    Engine(home=home, load_custom_nodes=False)
except ConfigError as exc:
    print("refused:", exc)
"""


def test_the_core_runs_without_opentelemetry_and_names_the_extra_when_asked_for_traces(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", NO_OTEL, str(tmp_path / "home")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "refused: [telemetry] is configured but OpenTelemetry is not installed" in done.stdout
    assert "pip install 'partyflow[otel]'" in done.stdout


def test_a_receiver_that_is_down_never_fails_a_run_and_closing_stays_bounded(tmp_path: Path) -> None:
    import socket
    import time

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = write_config(tmp_path / "home", f'[telemetry]\notlp_endpoint = "http://127.0.0.1:{port}"\ntimeout = 1\n')
    engine = Engine(home=home, load_custom_nodes=False)
    try:
        prompt = {"text": node("PrimitiveString", value="x"), "show": node("DisplayValue", value=["text", 0])}
        assert engine.run(prompt).ok
    finally:
        started = time.monotonic()
        engine.close()
        assert time.monotonic() - started < 5  # the export gives up; the process is not held hostage


def test_a_workflow_run_by_an_agents_tool_joins_the_callers_trace(
        fresh: OTLPReceiver, servers: tuple[OpenAIServer, OpenAIServer], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.agents.scripted import calls, text

    first, _ = servers
    home = make_home(tmp_path / "home", fresh, servers)
    flows = home / "user" / "workflows"
    flows.mkdir(parents=True)
    (flows / "echo.json").write_text(json.dumps({
        "1": {"class_type": "TextValue", "inputs": {"value": ""}, "_meta": {"title": "input:text"}},
        "2": {"class_type": "TextValue", "inputs": {"value": ["1", 0]}, "_meta": {"title": "output:said"}}}))
    first.script(calls(("echo", {"text": "hi"})), text("done"))
    prompt = {"model": node("APIModelLoader", provider="loop", model=""),
              "echo": node("WorkflowAsTool", workflow="echo", name="echo", description="Echoes."),
              "agent": node("Agent", model=["model", 0], system_prompt="", task="Echo hi", tools=["echo", 0]),
              "show": node("DisplayText", text=["agent", 0])}
    result = run_traced(home, prompt, monkeypatch)
    assert result.ok, result.error
    spans = fresh.spans
    assert len({s.trace_id for s in spans}) == 1  # the nested prompt is part of the caller's trace
    by_id = {s.span_id: s for s in spans}
    roots = [s for s in spans if s.name.startswith("invoke_workflow")]
    (outer,) = [s for s in roots if not s.parent_id]
    (nested,) = [s for s in roots if s.parent_id]
    agent = node_span(spans, "agent")
    assert outer.attributes["partyflow.prompt.id"] == result.prompt_id

    def ancestors(span: ReceivedSpan) -> list[str]:
        chain = []
        while span.parent_id:
            span = by_id[span.parent_id]
            chain.append(span.span_id)
        return chain

    (invoke,) = by_name(spans, "invoke_agent ")
    assert invoke.parent_id == agent.span_id and invoke.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert invoke.attributes["partyflow.agent.stop_reason"] == "final"
    assert len([s for s in by_name(spans, "chat ") if s.parent_id == invoke.span_id]) == 2
    (tool,) = by_name(spans, "execute_tool ")
    assert tool.name == "execute_tool echo" and tool.parent_id == invoke.span_id and not tool.failed
    assert tool.attributes["gen_ai.tool.name"] == "echo" and "gen_ai.tool.call.arguments" not in tool.attributes
    assert nested.parent_id == tool.span_id  # the tool's workflow run hangs under the tool call that ran it
    assert agent.span_id in ancestors(nested)


@pytest.mark.parametrize(("kind", "url", "expected"), [
    ("openai_compat", "https://api.openai.com/v1", "openai"),
    ("openai_compat", None, "openai"),  # the openai client's default
    ("openai_compat", "https://api.deepseek.com/v1", "deepseek"),
    ("openai_compat", "https://myres.openai.azure.com/openai", "azure.ai.openai"),
    ("openai_compat", "https://generativelanguage.googleapis.com/v1beta/openai", "gcp.gemini"),
    ("openai_compat", "http://127.0.0.1:11434/v1", "ollama-box"),  # unknown host: the configured name
    ("transformers", None, "transformers"),
    ("llamacpp", None, "llama_cpp"),
])
def test_provider_names_follow_the_conventions(kind: str, url: str | None, expected: str) -> None:
    from partyflow.llm.tracing import genai_provider

    assert genai_provider(kind, url, "ollama-box") == expected
