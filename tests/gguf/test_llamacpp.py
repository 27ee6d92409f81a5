"""The llamacpp provider on a real (tiny, random-weight) GGUF: loading, templates, generation, streaming, tools.

The weights are random, so most tests check properties of the reply (determinism, agreement between chat and
stream, token counts) rather than its words. Where the words matter (tool calls, JSON) the provider's own
grammars constrain the text; sampling, decoding and tool-call parsing are llama.cpp's and ours, unmocked.
Greedy decoding of this model writes control tokens, which decode to nothing, so tests that compare texts sample
with a seed.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.support.tiny_gguf import TinyGGUF

from partyflow.config import Home
from partyflow.llm.config import ProvidersConfig
from partyflow.llm.errors import (
    BadResponseError,
    ContextOverflowError,
    InvalidRequestError,
    MissingExtraError,
    ProviderConfigError,
)
from partyflow.llm.models import ModelManager
from partyflow.llm.providers import create
from partyflow.llm.providers.llamacpp import LlamaCppProvider, gguf_file
from partyflow.llm.types import (
    AssistantMessage,
    ChatRequest,
    FinishReason,
    ResponseFormat,
    SystemMessage,
    Tool,
    ToolCall,
    ToolMessage,
    UserMessage,
)

N_CTX = 512  # llama.cpp rounds context sizes up to a multiple of 256
WEATHER = Tool(name="get_weather", description="Current weather in a city",
               parameters={"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
                           "required": ["city"]})
TIME = Tool(name="get_time", description="The time now", parameters={"type": "object", "properties": {}})


def ask(text: str = "Hello, how are you?", **settings: Any) -> ChatRequest:
    return ChatRequest(messages=(SystemMessage(content="Answer briefly."), UserMessage(content=text)), **settings)


def sampled(**settings: Any) -> ChatRequest:
    return ask(temperature=1.0, seed=7, max_tokens=16, **settings)


def make(home: Home, path: str = "tiny.gguf", *, manager: ModelManager | None = None,
         **fields: Any) -> LlamaCppProvider:
    """A provider named `gguf` built from a config table, as a workflow gets it; `fields` override the table."""
    table = {key: value for key, value in {"type": "llamacpp", "path": path, "n_ctx": N_CTX, "n_threads": 1,
                                           **fields}.items() if value is not None}
    config = ProvidersConfig.from_mapping({"providers": {"gguf": table}}, environ={})
    return create("gguf", config, home=home, manager=manager)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def shared(tiny_gguf: TinyGGUF) -> ModelManager:
    """One loaded copy of the tiny GGUF for the providers of this module."""
    return ModelManager(budget_bytes=1 << 30)


@pytest.fixture
def provider(gguf_home: Home, tiny_gguf: TinyGGUF, shared: ModelManager) -> LlamaCppProvider:
    return make(gguf_home, manager=shared)


# --- the tiny GGUF itself --------------------------------------------------------------------------------------

def test_the_converted_gguf_computes_the_transformers_models_logits(tiny_gguf: TinyGGUF) -> None:
    import llama_cpp
    import torch
    from transformers import LlamaForCausalLM
    llama = llama_cpp.Llama(model_path=str(tiny_gguf.gguf), n_ctx=64, logits_all=True, verbose=False)
    ids = llama.tokenize(b"The weather in Paris is sunny and warm.", add_bos=False)
    llama.eval(ids)
    ours = np.asarray(llama.scores[len(ids) - 1])
    with torch.no_grad():
        theirs = LlamaForCausalLM.from_pretrained(tiny_gguf.source)(torch.tensor([ids])).logits[0, -1].numpy()
    assert np.abs(ours - theirs).max() < 1e-3  # names, shapes and the rotary row order all match


def test_the_gguf_tokenizer_and_template_match_the_transformers_ones(provider: LlamaCppProvider,
                                                                      tiny_gguf: TinyGGUF) -> None:
    from transformers import AutoTokenizer

    request = ask(max_tokens=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_gguf.source)
    expected = tokenizer.apply_chat_template([{"role": "system", "content": "Answer briefly."},
                                              {"role": "user", "content": "Hello, how are you?"}],
                                             add_generation_prompt=True, tokenize=True, return_dict=True)
    assert provider.chat(request).usage.prompt_tokens == len(expected["input_ids"])  # type: ignore[union-attr]
    assert gguf_file(tiny_gguf.gguf) and not gguf_file(tiny_gguf.source / "config.json")


# --- chat and streaming ----------------------------------------------------------------------------------------

def test_chat_generates_up_to_max_tokens_and_reports_usage(provider: LlamaCppProvider) -> None:
    response = provider.chat(sampled())
    assert response.provider == "gguf" and response.model == "tiny"
    assert response.text and response.finish_reason in (FinishReason.LENGTH, FinishReason.STOP)
    assert response.usage is not None and response.usage.prompt_tokens > 10
    assert 0 < response.usage.completion_tokens <= 16 + 3  # llama-cpp-python may finish a split UTF-8 character


def test_streaming_yields_the_same_text_as_chat(provider: LlamaCppProvider) -> None:
    chunks = list(provider.stream(sampled()))
    final = chunks[-1].response
    assert final is not None and all(chunk.response is None for chunk in chunks[:-1])
    assert len(chunks) > 2 and "".join(chunk.text for chunk in chunks) == final.text
    reply = provider.chat(sampled())
    assert final.text == reply.text and final.finish_reason == reply.finish_reason
    assert final.usage == reply.usage


def test_a_seed_reproduces_a_sample_and_another_seed_changes_it(provider: LlamaCppProvider) -> None:
    first, again = provider.chat(sampled()).text, provider.chat(sampled()).text
    assert first == again
    others = {provider.chat(ask(temperature=1.0, seed=seed, max_tokens=16)).text for seed in (1, 2, 3)}
    assert others - {first}
    greedy = ask(max_tokens=8)
    assert provider.chat(greedy) == provider.chat(greedy)


def test_async_chat_and_stream(provider: LlamaCppProvider) -> None:
    async def run() -> tuple[str, str]:
        reply = await provider.achat(sampled())
        pieces = [chunk.text async for chunk in provider.astream(sampled())]
        return reply.text, "".join(pieces)

    reply, streamed = asyncio.run(run())
    assert reply == streamed


def test_a_stream_left_early_frees_the_model(provider: LlamaCppProvider) -> None:
    stream = provider.stream(sampled())
    assert next(stream).text
    stream.close()
    assert provider.model().lock.acquire(timeout=1)
    provider.model().lock.release()
    assert provider.chat(sampled()).text


def test_one_generation_at_a_time_gives_every_thread_its_own_reply(provider: LlamaCppProvider) -> None:
    requests = [ask(temperature=1.0, seed=seed, max_tokens=12) for seed in range(6)]
    expected = [provider.chat(request).text for request in requests]
    got: dict[int, str] = {}
    lock = provider.model().lock
    lock.acquire()  # every thread must wait for the model
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, provider.chat(requests[i]).text))
               for i in range(len(requests))]
    for thread in threads:
        thread.start()
    assert not got  # nobody generated while the model was busy
    lock.release()
    for thread in threads:
        thread.join(timeout=10)
    assert [got[i] for i in range(len(requests))] == expected


# --- tools and structured output -------------------------------------------------------------------------------

def test_a_named_tool_choice_makes_the_model_call_that_tool(provider: LlamaCppProvider) -> None:
    response = provider.chat(ask("What is the weather in Paris?", tools=(WEATHER, TIME), tool_choice="get_weather",
                                 max_tokens=64))
    assert response.finish_reason is FinishReason.TOOL_CALLS and response.message.content is None
    (call,) = response.tool_calls
    assert call.name == "get_weather" and call.parsed_arguments()["city"] in ("Paris", "Rome")


def test_required_tool_choice_calls_one_of_the_tools_also_when_streaming(provider: LlamaCppProvider) -> None:
    names = set()
    for seed in range(4):
        chunks = list(provider.stream(ask(tools=(WEATHER, TIME), tool_choice="required", temperature=1.0,
                                          seed=seed, max_tokens=64)))
        final = chunks[-1].response
        assert final is not None and len(final.tool_calls) == 1
        assert not any(chunk.text for chunk in chunks)  # the call's text is not prose
        names.add(final.tool_calls[0].name)
    assert names <= {"get_weather", "get_time"}


def test_tool_choice_naming_no_tool_is_refused(provider: LlamaCppProvider) -> None:
    with pytest.raises(InvalidRequestError, match="'get_stock' names no tool") as caught:
        provider.chat(ask(tools=(WEATHER,), tool_choice="get_stock"))
    assert caught.value.provider == "gguf"


def test_a_conversation_with_a_tool_round_trip_renders_and_tool_choice_none_parses_nothing(
        provider: LlamaCppProvider) -> None:
    call = ToolCall(id="c1", name="get_weather", arguments='{"city": "Paris"}')
    history = (UserMessage(content="Weather in Paris?"), AssistantMessage(tool_calls=(call,)),
               ToolMessage(tool_call_id="c1", content="sunny"))
    with_tools = provider.chat(ChatRequest(messages=history, tools=(WEATHER,), max_tokens=4))
    without = provider.chat(ChatRequest(messages=history, tools=(WEATHER,), tool_choice="none", max_tokens=4))
    assert with_tools.usage.prompt_tokens > without.usage.prompt_tokens  # type: ignore[union-attr]
    assert not without.tool_calls


def test_a_json_schema_response_format_constrains_the_reply(provider: LlamaCppProvider) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"enum": [1, 2]}},
              "required": ["ok", "n"]}
    for seed in range(3):
        reply = provider.chat(ask("JSON please", response_format=ResponseFormat.from_schema(schema),
                                  temperature=1.0, seed=seed, max_tokens=64)).parsed_json()
        assert isinstance(reply["ok"], bool) and reply["n"] in (1, 2)


def test_extra_sampler_options_pass_and_unknown_ones_are_refused(provider: LlamaCppProvider) -> None:
    assert provider.chat(sampled(extra={"top_k": 5, "repeat_penalty": 1.1})).text
    with pytest.raises(InvalidRequestError, match="unknown extra options 'beam_width'"):
        provider.chat(sampled(extra={"beam_width": 4}))


# --- chat formats ----------------------------------------------------------------------------------------------

def test_a_named_chat_format_replaces_the_embedded_template(gguf_home: Home, shared: ModelManager) -> None:
    chatml = make(gguf_home, manager=shared, chat_format="chatml")
    embedded = make(gguf_home, manager=shared)
    assert chatml.model() is embedded.model()  # the format is applied per call: one loaded model serves both
    ours, theirs = chatml.chat(ask(max_tokens=1)), embedded.chat(ask(max_tokens=1))
    assert ours.usage.prompt_tokens != theirs.usage.prompt_tokens  # type: ignore[union-attr]
    with pytest.raises(ProviderConfigError, match="unknown chat_format 'nope'"):
        make(gguf_home, manager=shared, chat_format="nope").chat(ask())


def test_a_template_embedded_under_a_name_is_a_chat_format(gguf_home: Home, shared: ModelManager) -> None:
    plain = make(gguf_home, manager=shared, chat_format="plain").chat(ask(max_tokens=1))
    default = make(gguf_home, manager=shared).chat(ask(max_tokens=1))
    assert plain.usage.prompt_tokens < default.usage.prompt_tokens  # type: ignore[union-attr]  # no system prompt
    with pytest.raises(BadResponseError, match="this template renders no conversation") as caught:
        make(gguf_home, manager=shared, chat_format="broken").chat(ask())
    assert caught.value.provider == "gguf" and "try another chat_format" in str(caught.value)


# --- bad input -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "message"), [
    (lambda data: data[: len(data) // 2], "truncated or corrupt"),
    (lambda data: data[:64], "truncated or corrupt"),
    (lambda data: b"GGUF" + bytes(range(256)) * 4, "truncated or corrupt"),
    (lambda data: b"<html>Not found</html>", "is not a GGUF file"),
])
def test_a_corrupt_or_foreign_file_is_a_config_error_naming_provider_and_path(
        gguf_home: Home, tiny_gguf: TinyGGUF, content: Any, message: str) -> None:
    broken = gguf_home.models / "gguf" / "broken.gguf"
    broken.write_bytes(content(tiny_gguf.gguf.read_bytes()))
    with pytest.raises(ProviderConfigError, match=message) as caught:
        make(gguf_home, path="broken.gguf").chat(ask())
    assert caught.value.provider == "gguf" and str(broken) in str(caught.value)


def test_an_intact_gguf_of_an_unknown_architecture_is_told_apart_from_a_corrupt_one(gguf_home: Home) -> None:
    import gguf

    path = gguf_home.models / "gguf" / "alien.gguf"
    writer = gguf.GGUFWriter(str(path), arch="partyflow-alien")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ProviderConfigError, match="header is intact .architecture 'partyflow-alien'.") as caught:
        make(gguf_home, path="alien.gguf").chat(ask())
    assert "Upgrade llama-cpp-python" in str(caught.value)


def test_a_missing_file_says_so(gguf_home: Home) -> None:
    with pytest.raises(ProviderConfigError, match="missing.gguf does not exist"):
        make(gguf_home, path="missing.gguf").chat(ask())
    with pytest.raises(ProviderConfigError, match="is a folder"):
        make(gguf_home, path=".").chat(ask())


def test_context_overflow(provider: LlamaCppProvider) -> None:
    with pytest.raises(ContextOverflowError, match=f"context window is {N_CTX}") as caught:
        provider.chat(ask("hello " * 600))
    assert caught.value.provider == "gguf" and caught.value.model == "tiny"
    prompt = provider.chat(ask(max_tokens=1)).usage.prompt_tokens  # type: ignore[union-attr]
    with pytest.raises(ContextOverflowError, match=f"{N_CTX - prompt + 1} more were asked for"):
        provider.chat(ask(max_tokens=N_CTX - prompt + 1))
    with pytest.raises(ContextOverflowError):
        list(provider.stream(ask("hello " * 600)))
    assert provider.chat(ask(max_tokens=N_CTX - prompt, temperature=1.0, seed=1)).usage is not None


def test_a_missing_extra_names_partyflow_gguf(gguf_home: Home, tiny_gguf: TinyGGUF,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    provider = make(gguf_home)  # creating it imports nothing heavy; first use does
    with pytest.raises(MissingExtraError, match=r"pip install 'partyflow\[gguf\]'") as caught:
        provider.chat(ask())
    assert caught.value.extra == "gguf" and caught.value.provider == "gguf"


def test_images_are_refused(provider: LlamaCppProvider) -> None:
    from partyflow.llm.types import ImagePart, TextPart

    image = UserMessage(content=(TextPart(text="what is this?"), ImagePart.from_bytes(b"\x89PNG")))
    with pytest.raises(ProviderConfigError, match="text only"):
        provider.chat(ChatRequest(messages=(image,)))


# --- configuration and the model manager -----------------------------------------------------------------------

def test_settings_reach_llama_cpp_and_other_types_refuse_them(gguf_home: Home, tiny_gguf: TinyGGUF) -> None:
    config = ProvidersConfig.from_mapping(
        {"providers": {"g": {"type": "llamacpp", "path": "tiny.gguf"}}},
        environ={"PARTYFLOW_PROVIDERS__G__N_CTX": "768", "PARTYFLOW_PROVIDERS__G__N_THREADS": "1"})
    provider = create("g", config, home=gguf_home)
    assert provider.model().n_ctx == 768 and provider.model().llama.n_threads == 1
    default = make(gguf_home, n_ctx=None, n_threads=None)
    assert default.model().n_ctx == 4096
    with pytest.raises(ProviderConfigError, match="'n_ctx' applies only to a 'llamacpp' provider"):
        ProvidersConfig.from_mapping({"providers": {"t": {"type": "transformers", "path": "x", "n_ctx": 8}}},
                                     environ={})


def test_the_model_manager_reports_and_shares_the_loaded_gguf(gguf_home: Home, tiny_gguf: TinyGGUF) -> None:
    manager = ModelManager(budget_bytes=1 << 30)
    first, second = make(gguf_home, manager=manager), make(gguf_home, manager=manager)
    assert first.model() is second.model()
    (info,) = manager.loaded()
    assert info.name == "tiny" and info.path == tiny_gguf.gguf and info.bytes == tiny_gguf.gguf.stat().st_size
    assert make(gguf_home, manager=manager, n_ctx=768).model() is not first.model()  # other settings, other load
    assert len(manager.loaded()) == 2


def test_close_drops_the_providers_own_model(gguf_home: Home, tiny_gguf: TinyGGUF) -> None:
    provider = make(gguf_home)
    loaded = provider.model()
    assert provider.model() is loaded
    provider.close()
    assert provider.model() is not loaded
    assert isinstance(provider.path, Path) and "tiny.gguf" in repr(provider)
