"""Dynamic batching of concurrent requests to one local transformers model (issue 18): the replies are exactly the
ones each request gets alone (greedy and seeded sampling, differing prompt lengths and budgets), and concurrent
requests really share batches."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from partyflow.config import Home
from partyflow.llm.config import ProvidersConfig
from partyflow.llm.errors import ProviderConfigError
from partyflow.llm.models import ModelManager
from partyflow.llm.providers import create
from partyflow.llm.providers.transformers_local import TransformersProvider
from partyflow.llm.types import ChatRequest, SystemMessage, UserMessage

PROMPTS = ["Hello", "The weather in Paris is sunny and warm.", "Call the tool", "Workflows are graphs of nodes",
           "You are a helpful assistant. Answer briefly.", "How are you today?", "thank you", "Paris"]


def make(home: Home, manager: ModelManager, **fields: Any) -> TransformersProvider:
    config = ProvidersConfig.from_mapping(
        {"providers": {"local": {"type": "transformers", "path": "tiny", **fields}}}, environ={})
    return create("local", config, home=home, manager=manager)  # type: ignore[return-value]


def requests() -> list[ChatRequest]:
    """16 requests: prompts of different lengths, budgets from 4 to 19 tokens, half greedy, half seeded samples."""
    made = []
    for index in range(16):
        sampling: dict[str, Any] = {"temperature": 0.8, "seed": index, "top_p": 0.9} if index % 2 else {}
        made.append(ChatRequest(messages=(SystemMessage(content="Answer briefly."),
                                          UserMessage(content=PROMPTS[index % len(PROMPTS)] * (1 + index % 3))),
                                max_tokens=4 + index, **sampling))
    return made


@pytest.fixture(scope="module")
def manager(tiny_home: Home) -> ModelManager:
    return ModelManager(budget_bytes=1 << 30)


def test_concurrent_replies_equal_sequential_ones(tiny_home: Home, manager: ModelManager) -> None:
    alone = make(tiny_home, manager, max_batch=1)
    expected = [alone.chat(request) for request in requests()]
    batched = make(tiny_home, manager)
    start = threading.Barrier(len(expected))
    got: dict[int, Any] = {}

    def call(index: int, request: ChatRequest) -> None:
        start.wait()
        got[index] = batched.chat(request)

    threads = [threading.Thread(target=call, args=(i, r)) for i, r in enumerate(requests())]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, reply in enumerate(expected):
        assert (got[index].text, got[index].usage, got[index].finish_reason) == \
            (reply.text, reply.usage, reply.finish_reason), index
    runner = batched.model().batcher
    assert runner is not None and runner.largest > 1 and runner.batches < len(expected)


def test_async_chats_share_batches_without_holding_threads(tiny_home: Home, manager: ModelManager) -> None:
    alone = make(tiny_home, manager, max_batch=1)
    expected = [alone.chat(request).text for request in requests()]
    batched = make(tiny_home, manager)

    async def main() -> list[str]:
        replies = await asyncio.gather(*(batched.achat(request) for request in requests()))
        return [reply.text for reply in replies]

    assert asyncio.run(main()) == expected
    runner = batched.model().batcher
    assert runner is not None and runner.largest >= 8  # more than the default thread pool's few workers


def test_stop_strings_take_the_sequential_path(tiny_home: Home, manager: ModelManager) -> None:
    provider = make(tiny_home, manager)
    request = ChatRequest(messages=(UserMessage(content="Hello"),), max_tokens=8, stop=("x",))
    assert not provider._batchable(request)
    assert provider.chat(request).usage is not None


def test_max_batch_is_for_transformers_only() -> None:
    with pytest.raises(ProviderConfigError, match="'max_batch' applies only to a 'transformers' provider"):
        ProvidersConfig.from_mapping({"providers": {"x": {"type": "openai_compat", "max_batch": 4}}}, environ={})
