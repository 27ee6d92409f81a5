"""The openai_compat provider against a real HTTP server on 127.0.0.1 speaking the OpenAI wire format."""

import asyncio
import json
import logging
import socket

import pytest
from tests.support.openai_server import Reply, chat_completion, chunk, text_stream, usage_chunk
from tests.support.providers import fresh_server_fixture, running_server_fixture

from partyflow.llm import errors
from partyflow.llm.config import ProviderConfig, ProvidersConfig
from partyflow.llm.providers import create
from partyflow.llm.providers.openai_compat import OpenAICompatProvider
from partyflow.llm.types import (
    ChatModel,
    ChatRequest,
    EmbeddingModel,
    FinishReason,
    ImagePart,
    ResponseFormat,
    TextPart,
    Tool,
    UserMessage,
)

KEY = "sk-test-0123456789abcdefghij"
ENV = {"TEST_API_KEY": KEY}
HELLO = ChatRequest(messages=(UserMessage(content="hello there"),))
WEATHER = Tool(name="weather", parameters={"type": "object", "properties": {"city": {"type": "string"}}})


running_server = running_server_fixture()
server = fresh_server_fixture()


@pytest.fixture
def slept():
    return []


@pytest.fixture
def make(server, slept):
    made = []

    def make(**fields):
        table = {"name": "loopback", "type": "openai_compat", "base_url": server.url, "model": "tiny-chat",
                 "api_key_env": "TEST_API_KEY", "timeout": 5.0, "max_retries": 2} | fields
        provider = OpenAICompatProvider(ProviderConfig(**table), environ=ENV, sleep=slept.append,
                                        async_sleep=_recording_async_sleep(slept))
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


def _recording_async_sleep(slept):
    async def sleep(seconds):
        slept.append(seconds)

    return sleep


def collect(provider, request):
    async def run():
        return [piece async for piece in provider.astream(request)]

    return asyncio.run(run())


# --- the happy paths -------------------------------------------------------------------------------------------

def test_chat_round_trip_with_key_headers_usage_and_cost(make, server):
    provider = make(extra_headers={"X-Title": "partyflow"}, price_input_per_1k=1.0, price_output_per_1k=2.0)
    response = provider.chat(HELLO)
    assert response.text == "echo: hello there"
    assert (response.provider, response.model, response.finish_reason) == ("loopback", "tiny-chat",
                                                                           FinishReason.STOP)
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (7, 3)
    assert response.usage.cost == pytest.approx((7 * 1.0 + 3 * 2.0) / 1000)
    sent = server.requests[0]
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {KEY}" and sent.headers["x-title"] == "partyflow"
    assert sent.body["messages"] == [{"role": "user", "content": "hello there"}]
    assert isinstance(provider, ChatModel) and isinstance(provider, EmbeddingModel)


def test_request_model_overrides_the_default(make, server):
    assert make().chat(HELLO.model_copy(update={"model": "other"})).model == "other"
    assert server.requests[0].body["model"] == "other"


def test_async_chat(make):
    assert asyncio.run(make().achat(HELLO)).text == "echo: hello there"


def test_stream_yields_text_then_the_assembled_response(make, server):
    pieces = list(make().stream(HELLO))
    assert [p.text for p in pieces[:-1]] == ["echo: ", "hello ", "there"]
    final = pieces[-1].response
    assert pieces[-1].done and final.text == "echo: hello there" and final.finish_reason == FinishReason.STOP
    assert final.usage.completion_tokens == 3
    assert server.requests[0].body["stream"] is True
    assert server.requests[0].body["stream_options"] == {"include_usage": True}


def test_async_stream(make):
    pieces = collect(make(), HELLO)
    assert "".join(p.text for p in pieces) == "echo: hello there" and pieces[-1].response is not None


def test_parallel_tool_calls(make, server):
    server.script(Reply.json(chat_completion(None, tool_calls=[
        {"id": "a", "name": "weather", "arguments": '{"city": "Oslo"}'},
        {"id": "b", "name": "weather", "arguments": '{"city": "Lima"}'},
    ])))
    request = HELLO.model_copy(update={"tools": (WEATHER,), "parallel_tool_calls": True, "tool_choice": "auto"})
    response = make().chat(request)
    assert response.finish_reason == FinishReason.TOOL_CALLS
    assert [(c.id, c.parsed_arguments()["city"]) for c in response.tool_calls] == [("a", "Oslo"), ("b", "Lima")]
    body = server.requests[0].body
    assert body["tools"][0]["function"]["name"] == "weather" and body["parallel_tool_calls"] is True


def test_streamed_tool_calls_are_assembled_from_fragments(make, server):
    def call(index, **function):
        return chunk({"tool_calls": [{"index": index, **({"id": f"id{index}", "type": "function"}
                                                         if "name" in function else {}), "function": function}]})

    server.script(Reply.stream([
        chunk({"role": "assistant", "content": None}),
        call(0, name="weather", arguments=""), call(1, name="weather", arguments='{"ci'),
        call(0, arguments='{"city": '), call(1, arguments='ty": "Lima"}'), call(0, arguments='"Oslo"}'),
        chunk({}, finish_reason="tool_calls"), usage_chunk(),
    ]))
    pieces = list(make().stream(HELLO.model_copy(update={"tools": (WEATHER,)})))
    final = pieces[-1].response
    assert [(c.id, c.name, c.parsed_arguments()) for c in final.tool_calls] == [
        ("id0", "weather", {"city": "Oslo"}), ("id1", "weather", {"city": "Lima"})]
    assert final.text == "" and final.finish_reason == FinishReason.TOOL_CALLS
    assert sum(len(p.tool_calls) for p in pieces) == 5


def test_vision_inputs_are_sent_as_image_parts(make, server):
    image = ImagePart.from_bytes(b"\x89PNG\r\n", "image/png", detail="low")
    make().chat(ChatRequest(messages=(UserMessage(content=(TextPart(text="what is it"), image)),)))
    parts = server.requests[0].body["messages"][0]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": image.url, "detail": "low"}}


def test_json_mode_accepts_json_and_refuses_prose(make, server):
    request = HELLO.model_copy(update={"response_format": ResponseFormat.json_mode()})
    server.script(Reply.json(chat_completion('{"ok": true}')), Reply.json(chat_completion("Sure! Here it is")))
    provider = make()
    assert provider.chat(request).parsed_json() == {"ok": True}
    assert server.requests[0].body["response_format"] == {"type": "json_object"}
    with pytest.raises(errors.BadResponseError, match="not the requested JSON") as caught:
        provider.chat(request)
    assert "provider 'loopback', model 'tiny-chat'" in str(caught.value)


def test_json_schema_is_sent(make, server):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    server.script(Reply.json(chat_completion('{"n": 1}')))
    make().chat(HELLO.model_copy(update={"response_format": ResponseFormat.from_schema(schema, name="count")}))
    assert server.requests[0].body["response_format"]["json_schema"] == {"name": "count", "schema": schema,
                                                                         "strict": True}


def test_embeddings_come_back_in_input_order(make, server):
    server.script(Reply.json({"object": "list", "model": "tiny-embed", "usage": {"prompt_tokens": 2,
                                                                                 "total_tokens": 2},
                              "data": [{"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
                                       {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}]}))
    provider = make(embedding_model="tiny-embed")
    result = provider.embed(["first", "second"])
    assert result.vectors == ((1.0, 0.0), (0.0, 1.0)) and result.usage.prompt_tokens == 2
    assert server.requests[0].body["model"] == "tiny-embed"
    assert len(asyncio.run(provider.aembed(["a", "b", "c"])).vectors) == 3


def test_embeddings_count_mismatch_is_a_bad_response(make, server):
    server.script(Reply.json({"object": "list", "model": "e", "data": [], "usage": None}))
    with pytest.raises(errors.BadResponseError, match="asked for 1 embeddings, got 0"):
        make().embed(["x"])


def test_model_listing(make):
    provider = make()
    assert provider.list_models() == ["tiny-chat", "tiny-embed"]

    async def run():
        return await provider.alist_models()

    assert asyncio.run(run()) == ["tiny-chat", "tiny-embed"]


def test_create_builds_a_provider_from_configuration(server):
    config = ProvidersConfig.from_mapping({"providers": {"local": {
        "type": "openai_compat", "base_url": server.url, "model": "tiny-chat"}}}, environ={})
    with create("local", config) as provider:
        assert provider.chat(HELLO).text == "echo: hello there"
    assert server.requests[0].headers["authorization"] == "Bearer no-key"


def test_create_explains_unknown_names_and_missing_keys(server):
    config = ProvidersConfig.from_mapping({"providers": {
        "remote": {"type": "openai_compat", "base_url": server.url, "api_key_env": "NOT_SET_ANYWHERE"},
        "gguf": {"type": "llamacpp", "path": "m.gguf"},
    }}, environ={})
    with pytest.raises(errors.ProviderConfigError, match="unknown provider 'nope'"):
        create("nope", config)
    with pytest.raises(errors.ProviderConfigError, match=r"\$NOT_SET_ANYWHERE is not set"):
        create("remote", config, environ={})
    assert create("gguf", config).path.name == "m.gguf"  # creating imports nothing heavy: errors come on first use


def test_missing_model_is_a_config_error(make):
    with pytest.raises(errors.ProviderConfigError, match="no model given"):
        make(model=None).chat(HELLO)


# --- failures: each gets a clear error or a correct retry ------------------------------------------------------

def test_401_is_an_auth_error_naming_the_key_variable_and_not_retried(make, server, slept):
    server.script(Reply.error(401, "Incorrect API key provided"))
    with pytest.raises(errors.AuthError) as caught:
        make().chat(HELLO)
    message = str(caught.value)
    assert "provider 'loopback', model 'tiny-chat'" in message and "Incorrect API key" in message
    assert "$TEST_API_KEY" in message and "HTTP 401" in message
    assert len(server.requests) == 1 and slept == []


def test_404_is_model_not_found(make, server):
    server.script(Reply.error(404, "The model `gpt-9` does not exist", code="model_not_found"))
    with pytest.raises(errors.ModelNotFoundError, match="gpt-9.*partyflow models list"):
        make(model="gpt-9").chat(HELLO)


def test_429_is_retried_after_the_servers_retry_after(make, server, slept):
    server.script(Reply.error(429, "slow down", headers={"Retry-After": "2"}),
                  Reply.error(429, "slow down", headers={"retry-after-ms": "1500"}))
    assert make().chat(HELLO).text == "echo: hello there"
    assert slept == [2.0, 1.5] and len(server.requests) == 3


def test_429_that_persists_is_a_rate_limit_error(make, server, slept):
    server.script(*[Reply.error(429, "quota", headers={"Retry-After": "1"})] * 3)
    with pytest.raises(errors.RateLimitError, match="rate limited: quota") as caught:
        make().chat(HELLO)
    assert caught.value.retry_after == 1.0 and slept == [1.0, 1.0] and len(server.requests) == 3


def test_500_is_retried_with_backoff_then_reported(make, server, slept):
    server.script(Reply.error(500, "boom"), Reply.error(503, "busy"), Reply.error(500, "still boom"))
    with pytest.raises(errors.ServerError, match="still boom"):
        make().chat(HELLO)
    assert len(slept) == 2 and 0 < slept[0] < slept[1]


def test_context_overflow_is_recognised(make, server):
    server.script(Reply.error(400, "This model's maximum context length is 8192 tokens",
                              code="context_length_exceeded"))
    with pytest.raises(errors.ContextOverflowError, match="Shorten the conversation"):
        make().chat(HELLO)


def test_other_400s_are_invalid_requests(make, server):
    server.script(Reply.error(400, "tools are not supported by this model"))
    with pytest.raises(errors.InvalidRequestError, match="tools are not supported"):
        make().chat(HELLO)


def test_malformed_json_is_a_bad_response_and_not_retried(make, server, slept):
    server.script(Reply.malformed())
    with pytest.raises(errors.BadResponseError, match="malformed.*JSONDecodeError"):
        make().chat(HELLO)
    assert slept == []


def test_a_reply_that_is_not_json_is_a_bad_response(make, server):
    server.script(Reply(raw=b"<html>It works!</html>", headers={"Content-Type": "text/html"}))
    with pytest.raises(errors.BadResponseError, match="got text starting '<html>"):
        make().chat(HELLO)


def test_a_json_reply_of_the_wrong_shape_is_a_bad_response(make, server):
    server.script(Reply.json({"detail": "hello from some other API"}))
    with pytest.raises(errors.BadResponseError, match="no choices"):
        make().chat(HELLO)


def test_slow_answer_times_out(make, server):
    server.script(Reply.slow(30))
    with pytest.raises(errors.RequestTimeoutError, match="within 0.2s"):
        make(timeout=0.2, max_retries=0).chat(HELLO)


def test_dropped_connection_is_retried(make, server, slept):
    server.script(Reply.dropped())
    assert make().chat(HELLO).text == "echo: hello there"
    assert len(slept) == 1


def test_dropped_connections_that_persist_are_reported(make, server):
    server.script(*[Reply.dropped()] * 3)
    with pytest.raises(errors.ProviderConnectionError, match="Server disconnected"):
        make().chat(HELLO)


def test_stream_dropped_midway_is_a_connection_error_after_the_text_so_far(make, server):
    server.script(Reply.stream(text_stream(["one ", "two ", "three"]), drop_after=2))
    received = []
    with pytest.raises(errors.ProviderConnectionError):
        for piece in make().stream(HELLO):
            received.append(piece.text)
    assert received == ["one "]
    assert len(server.requests) == 1  # text already reached the caller: no silent retry


def test_stream_that_ends_without_finishing_is_reported(make, server):
    server.script(Reply.stream([chunk({"content": "half"})], done_marker=True))
    with pytest.raises(errors.ProviderConnectionError, match="ended before the reply was complete"):
        list(make().stream(HELLO))


def test_stream_errors_before_the_first_token_are_retried(make, server, slept):
    server.script(Reply.error(429, "wait", headers={"Retry-After": "0.5"}))
    pieces = list(make().stream(HELLO))
    assert pieces[-1].response.text == "echo: hello there" and slept == [0.5]


def test_async_errors_map_the_same_way(make, server, slept):
    server.script(Reply.error(429, "wait", headers={"Retry-After": "3"}), Reply.error(401, "nope"))
    with pytest.raises(errors.AuthError):
        asyncio.run(make().achat(HELLO))
    assert slept == [3.0]
    server.script(Reply.stream(text_stream(["a", "b"]), drop_after=1))
    with pytest.raises(errors.ProviderConnectionError):
        collect(make(), HELLO)


def test_unreachable_server_is_a_connection_error():
    with socket.socket() as probe:  # a port that was free a moment ago; nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = ProviderConfig(name="gone", type="openai_compat", base_url=f"http://127.0.0.1:{port}/v1",
                            model="m", max_retries=0)
    with pytest.raises(errors.ProviderConnectionError, match=f"127.0.0.1:{port}.*base_url"):
        OpenAICompatProvider(config).chat(HELLO)


# --- secrets ---------------------------------------------------------------------------------------------------

def test_keys_never_appear_in_errors_reprs_or_logs(make, server, caplog):
    header_secret = "hdr-secret-value-42"
    echo = f"Invalid key Bearer {KEY}; header {header_secret}"
    server.script(Reply.error(401, echo), Reply.error(500, json.dumps({"key": KEY})),
                  Reply.error(500, KEY), Reply.error(500, KEY), Reply.error(400, f"context length {KEY}"))
    provider = make(extra_headers={"X-Secret": header_secret})
    raised = []
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            try:
                provider.chat(HELLO)
            except errors.LLMError as error:
                raised.append(error)
                logging.getLogger("partyflow.test").exception("call failed: %s", error)
    assert [type(e) for e in raised] == [errors.AuthError, errors.ServerError, errors.ContextOverflowError]
    texts = [str(e) for e in raised] + [repr(e) for e in raised] + [repr(provider), repr(provider.config)]
    texts.append(caplog.text)
    for text in texts:
        assert KEY not in text and header_secret not in text
    assert "[REDACTED]" in str(raised[0])
    assert all(e.__cause__ is None and e.__suppress_context__ for e in raised)


def test_the_server_itself_had_no_failures(running_server):
    assert running_server.failures == []
