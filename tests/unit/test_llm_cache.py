import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from partyflow.llm.cache import CachedChatModel, ResponseCache
from partyflow.llm.types import (
    AssistantMessage,
    ChatChunk,
    ChatModel,
    ChatRequest,
    ChatResponse,
    ToolCall,
    UserMessage,
)

DETERMINISTIC = ChatRequest(messages=(UserMessage(content="2+2?"),), temperature=0)
SAMPLED = ChatRequest(messages=(UserMessage(content="2+2?"),), temperature=0.7)


class CountingModel:
    """A ChatModel that answers with a numbered reply, so a cached answer is recognisable."""

    name = "counting"
    default_model = "m"

    def __init__(self):
        self.calls = 0
        self._lock = threading.Lock()

    def _reply(self, request):
        with self._lock:
            self.calls += 1
            number = self.calls
        calls = (ToolCall(id="t", name="f", arguments="{}"),) if number == 99 else ()
        return ChatResponse(message=AssistantMessage(content=f"reply {number}", tool_calls=calls),
                            model=request.model or "m", provider=self.name)

    def chat(self, request):
        return self._reply(request)

    async def achat(self, request):
        return self._reply(request)

    def stream(self, request):
        response = self._reply(request)
        yield ChatChunk(text=response.text)
        yield ChatChunk(response=response)

    async def astream(self, request):
        for piece in self.stream(request):
            yield piece

    def close(self):
        pass


@pytest.fixture
def cached(tmp_path):
    inner = CountingModel()
    return inner, CachedChatModel(inner, ResponseCache(tmp_path / "cache" / "llm.sqlite"))


def test_deterministic_requests_are_answered_once(cached):
    inner, model = cached
    assert isinstance(model, ChatModel)
    assert model.chat(DETERMINISTIC).text == model.chat(DETERMINISTIC).text == "reply 1"
    assert inner.calls == 1


def test_sampled_requests_are_never_cached(cached):
    inner, model = cached
    assert model.chat(SAMPLED).text == "reply 1" and model.chat(SAMPLED).text == "reply 2"
    assert len(model.cache) == 0


def test_the_key_covers_the_whole_request_and_the_model(cached):
    inner, model = cached
    model.chat(DETERMINISTIC)
    model.chat(DETERMINISTIC.model_copy(update={"max_tokens": 5}))
    model.chat(DETERMINISTIC.model_copy(update={"model": "other"}))
    model.chat(DETERMINISTIC.model_copy(update={"seed": 1}))
    assert inner.calls == 4


def test_streams_are_stored_and_replayed(cached):
    inner, model = cached
    first = list(model.stream(DETERMINISTIC))
    again = list(model.stream(DETERMINISTIC))
    assert inner.calls == 1
    assert [p.text for p in again] == ["reply 1", ""] and again[-1].response == first[-1].response


def test_async_paths_share_the_cache(cached):
    inner, model = cached

    async def run():
        first = await model.achat(DETERMINISTIC)
        pieces = [p async for p in model.astream(DETERMINISTIC)]
        return first, pieces

    first, pieces = asyncio.run(run())
    assert pieces[-1].response == first and inner.calls == 1


def test_replayed_tool_calls_come_as_one_delta_each(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    response = ChatResponse(message=AssistantMessage(tool_calls=(ToolCall(id="a", name="f", arguments="{}"),)),
                            model="m", provider="p")
    cache.put("p", "m", DETERMINISTIC, response)
    inner = CountingModel()
    inner.name = "p"
    pieces = list(CachedChatModel(inner, cache).stream(DETERMINISTIC))
    assert [(d.id, d.name) for d in pieces[0].tool_calls] == [("a", "f")] and pieces[-1].response == response


def test_clear(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    response = ChatResponse(message=AssistantMessage(content="x"), model="m", provider="p")
    cache.put("p", "m", DETERMINISTIC, response)
    cache.put("q", "m", DETERMINISTIC, response)
    assert cache.clear("p") == 1 and len(cache) == 1 and cache.clear() == 1


def test_the_file_is_shared_across_processes(tmp_path):
    path = tmp_path / "shared.sqlite"
    writer = (
        "import sys; from pathlib import Path\n"
        "from partyflow.llm.cache import ResponseCache\n"
        "from partyflow.llm.types import *\n"
        "request = ChatRequest(messages=(UserMessage(content='2+2?'),), temperature=0)\n"
        "reply = ChatResponse(message=AssistantMessage(content='4'), model='m', provider='p')\n"
        "ResponseCache(Path(sys.argv[1])).put('p', 'm', request, reply)\n"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    subprocess.run([sys.executable, "-c", writer, str(path)], check=True, env={"PYTHONPATH": str(src)})
    assert ResponseCache(path).get("p", "m", DETERMINISTIC).text == "4"
