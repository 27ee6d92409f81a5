"""The transformers provider on a real (tiny, random) model: loading, templates, generation, streaming, tools.

The model's weights are random, so most tests check properties of the reply (lengths, determinism, agreement
between chat and stream) rather than its words. Where the words matter (tool calls, stop strings) a logits
processor forces the model to write a chosen text; everything after the logits (generate's loop, decoding,
stop strings, tool-call parsing) is the real code.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch  # the `local` extra is part of the test install: no skipping

from partyflow.config import Home
from partyflow.llm.config import ProvidersConfig
from partyflow.llm.errors import BadResponseError, ContextOverflowError, ProviderConfigError
from partyflow.llm.models import ModelManager
from partyflow.llm.providers import create
from partyflow.llm.providers.transformers_local import TransformersProvider
from partyflow.llm.types import (
    AssistantMessage,
    ChatRequest,
    FinishReason,
    SystemMessage,
    Tool,
    ToolCall,
    ToolMessage,
    UserMessage,
)

WEATHER = Tool(name="get_weather", description="Current weather in a city",
               parameters={"type": "object", "properties": {"city": {"type": "string"}}})
CALL_TEXT = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


def ask(text: str = "Hello, how are you?", **settings: Any) -> ChatRequest:
    return ChatRequest(messages=(SystemMessage(content="Answer briefly."), UserMessage(content=text)), **settings)


def make(home: Home, path: str = "tiny", **options: Any) -> TransformersProvider:
    config = ProvidersConfig.from_mapping({"providers": {"local": {"type": "transformers", "path": path}}},
                                          environ={})
    return create("local", config, home=home, **options)  # type: ignore[return-value]


class ForceText:
    """Makes the model write `token_ids` and then its end token, whatever its weights say."""

    def __init__(self, token_ids: Sequence[int], end_id: int) -> None:
        self.script = [*token_ids, end_id]
        self.start: int | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.start = input_ids.shape[1] if self.start is None else self.start
        step = min(input_ids.shape[1] - self.start, len(self.script) - 1)
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.script[step]] = 0.0
        return forced


@pytest.fixture(scope="module")
def shared(tiny_home: Home) -> ModelManager:
    """One loaded copy of the tiny model for the providers of this module."""
    return ModelManager(budget_bytes=1 << 30)


@pytest.fixture
def provider(tiny_home: Home, shared: ModelManager) -> TransformersProvider:
    return make(tiny_home, manager=shared)


def forcing(home: Home, shared: ModelManager, text: str) -> TransformersProvider:
    tokenizer = make(home, manager=shared).model().tokenizer
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return make(home, manager=shared, generate_options={"logits_processor": [ForceText(ids, tokenizer.eos_token_id)]})


# --- loading ---------------------------------------------------------------------------------------------------

def test_loads_on_cpu_in_float32_from_models_llm(provider: TransformersProvider, tiny_path: Path) -> None:
    local = provider.model()
    assert provider.path == tiny_path and local.device == "cpu" and local.dtype == "float32"
    assert next(local.model.parameters()).dtype == torch.float32 and local.max_positions == 256


def test_dtype_is_selectable(tiny_home: Home) -> None:
    local = make(tiny_home, dtype="bfloat16").model()
    assert next(local.model.parameters()).dtype == torch.bfloat16
    with pytest.raises(ProviderConfigError, match="unknown dtype 'float8'.*Use one of"):
        make(tiny_home, dtype="float8").model()


def test_a_folder_that_is_not_a_model_names_provider_and_path(tiny_home: Home) -> None:
    empty = tiny_home.models / "llm" / "empty"
    empty.mkdir(exist_ok=True)
    with pytest.raises(ProviderConfigError, match=rf"provider 'local'.*{empty}.*not a transformers model folder"):
        make(tiny_home, "empty").chat(ask())
    broken = tiny_home.models / "llm" / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ProviderConfigError, match=rf"provider 'local'.*cannot load the model in {broken}"):
        make(tiny_home, "broken").chat(ask())


# --- generation --------------------------------------------------------------------------------------------------

def test_chat_counts_tokens_and_stops_at_max_tokens(provider: TransformersProvider) -> None:
    local = provider.model()
    end_id = local.tokenizer.eos_token_id
    local.model.generation_config.eos_token_id = None  # random weights may end early; here they must not
    try:
        reply = provider.chat(ask(max_tokens=6, temperature=0))
    finally:
        local.model.generation_config.eos_token_id = end_id
    prompt = local.tokenizer.apply_chat_template(
        [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hello, how are you?"}],
        add_generation_prompt=True, return_dict=True)["input_ids"]
    assert reply.usage is not None and reply.usage.prompt_tokens == len(prompt)
    assert reply.usage.completion_tokens == 6 and reply.finish_reason is FinishReason.LENGTH
    assert reply.provider == "local" and reply.model == "tiny"


def test_greedy_is_repeatable_and_a_seed_reproduces_sampling(provider: TransformersProvider) -> None:
    assert provider.chat(ask(max_tokens=8, temperature=0)).text == provider.chat(ask(max_tokens=8, temperature=0)).text
    global_state = torch.random.get_rng_state()
    first = provider.chat(ask(max_tokens=16, temperature=1.5, seed=7))
    again = provider.chat(ask(max_tokens=16, temperature=1.5, seed=7))
    other = provider.chat(ask(max_tokens=16, temperature=1.5, seed=8))
    assert first.message == again.message and first.usage == again.usage
    assert (first.text, first.usage) != (other.text, other.usage)
    assert torch.equal(torch.random.get_rng_state(), global_state)  # sampling used its own generator


def test_stop_strings_end_the_reply_and_are_left_out(tiny_home: Home, shared: ModelManager) -> None:
    reply = forcing(tiny_home, shared, "The weather in Paris. More text").chat(ask(stop=(".",), max_tokens=40))
    assert reply.text == "The weather in Paris" and reply.finish_reason is FinishReason.STOP


def test_a_prompt_longer_than_the_context_window_is_a_context_overflow(provider: TransformersProvider) -> None:
    with pytest.raises(ContextOverflowError, match=r"provider 'local', model 'tiny'.*context window is 256"):
        provider.chat(ask("weather " * 300))
    with pytest.raises(ContextOverflowError, match="Shorten the conversation"):
        provider.chat(ask("weather " * 100, max_tokens=200))
    reply = provider.chat(ask("weather " * 100, temperature=0))  # no max_tokens: what is left of the window
    assert reply.usage is not None and reply.usage.total_tokens <= 256


def test_one_model_serves_one_generation_at_a_time(provider: TransformersProvider) -> None:
    local = provider.model()
    original = local.model.generate
    active, peak, guard = [0], [0], threading.Lock()

    def counting(*args: Any, **kwargs: Any) -> Any:
        with guard:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return original(*args, **kwargs)
        finally:
            with guard:
                active[0] -= 1

    local.model.generate = counting
    try:
        threads = [threading.Thread(target=provider.chat, args=(ask(max_tokens=8),)) for _ in range(4)]
        threads.append(threading.Thread(target=lambda: list(provider.stream(ask(max_tokens=8)))))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        del local.model.generate
    assert peak[0] == 1 and active[0] == 0


# --- streaming ---------------------------------------------------------------------------------------------------

def test_stream_yields_text_then_the_same_reply_as_chat(provider: TransformersProvider) -> None:
    chunks = list(provider.stream(ask(max_tokens=12, temperature=0)))
    final = chunks[-1].response
    assert final is not None and all(not c.done for c in chunks[:-1])
    assert "".join(c.text for c in chunks) == final.text
    assert final == provider.chat(ask(max_tokens=12, temperature=0))


def test_a_stream_closed_early_stops_generating_and_frees_the_model(tiny_home: Home, shared: ModelManager) -> None:
    stream = forcing(tiny_home, shared, "Hello, how are you today? " * 8).stream(ask(max_tokens=200))
    assert next(stream).text
    stream.close()  # must cancel the worker and release the lock, or the next call would hang
    local = make(tiny_home, manager=shared).model()
    assert local.lock.acquire(timeout=5)
    local.lock.release()


def test_async_chat_and_stream(provider: TransformersProvider) -> None:
    async def both() -> tuple[Any, list[Any]]:
        reply = await provider.achat(ask(max_tokens=5, temperature=0))
        return reply, [chunk async for chunk in provider.astream(ask(max_tokens=5, temperature=0))]

    reply, chunks = asyncio.run(both())
    assert chunks[-1].response == reply


# --- tools -------------------------------------------------------------------------------------------------------

def test_tools_reach_the_template(provider: TransformersProvider) -> None:
    plain = provider.chat(ask(max_tokens=1))
    with_tools = provider.chat(ask(max_tokens=1, tools=(WEATHER,)))
    assert plain.usage and with_tools.usage
    tool_json = json.dumps({"type": "function", "function": {"name": "get_weather", "description":
                            WEATHER.description, "parameters": WEATHER.parameters}})
    grown = len(provider.model().tokenizer(tool_json, add_special_tokens=False)["input_ids"])
    assert with_tools.usage.prompt_tokens - plain.usage.prompt_tokens >= grown


def test_a_forced_tool_call_is_parsed_from_the_generated_text(tiny_home: Home, shared: ModelManager) -> None:
    """Forced tokens (not the random weights) write the call; generate, decode and the parser are real."""
    reply = forcing(tiny_home, shared, "Let me look. " + CALL_TEXT).chat(ask("Weather in Paris?", tools=(WEATHER,)))
    assert reply.finish_reason is FinishReason.TOOL_CALLS and reply.text == "Let me look."
    assert [(c.name, c.parsed_arguments()) for c in reply.tool_calls] == [("get_weather", {"city": "Paris"})]


def test_a_streamed_tool_call_is_held_back_and_parsed(tiny_home: Home, shared: ModelManager) -> None:
    chunks = list(forcing(tiny_home, shared, CALL_TEXT).stream(ask("Weather in Paris?", tools=(WEATHER,))))
    assert [c.text for c in chunks] == [""] and chunks[-1].response is not None
    assert chunks[-1].response.tool_calls[0].name == "get_weather"


def test_a_history_with_tool_calls_and_results_renders(provider: TransformersProvider) -> None:
    history = (UserMessage(content="Weather in Paris?"),
               AssistantMessage(tool_calls=(ToolCall(id="c1", name="get_weather", arguments='{"city": "Paris"}'),)),
               ToolMessage(tool_call_id="c1", content="sunny"))
    reply = provider.chat(ChatRequest(messages=history, tools=(WEATHER,), max_tokens=3))
    assert reply.usage is not None and reply.usage.prompt_tokens > 40


def test_a_template_that_fails_is_reported(tiny_home: Home, shared: ModelManager,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    provider = make(tiny_home, manager=shared)
    monkeypatch.setattr(provider.model().tokenizer, "chat_template", "{{ raise_exception('no tools here') }}")
    with pytest.raises(BadResponseError, match="chat template .* failed: no tools here"):
        provider.chat(ask())
