"""Conversation sessions in SQLite: storing, windows that keep tool exchanges whole, summaries by a model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.agents.scripted import chat_requests, text
from tests.support.openai_server import OpenAIServer

from partyflow.llm import AssistantMessage, ChatModel, SystemMessage, ToolCall, ToolMessage, UserMessage
from partyflow.memory import SessionMemory, SessionStore, window

CALL = ToolCall(id="c1", name="lookup", arguments='{"q": "x"}')


def exchange(i: int) -> list:
    return [UserMessage(content=f"question {i}"), AssistantMessage(tool_calls=(CALL,)),
            ToolMessage(tool_call_id="c1", content="found"), AssistantMessage(content=f"answer {i}")]


def test_sessions_persist_across_connections(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    with SessionStore.open(db) as store:
        assert store.append("s1", exchange(1), metadata={"user": "ada"}) == 4
        store.append("s1", exchange(2))
        store.append("s2", [UserMessage(content="other")])
    with SessionStore.open(db) as store:
        messages = store.messages("s1")
        assert len(messages) == 8 and messages[1].tool_calls == (CALL,) and messages[2].tool_call_id == "c1"
        info = store.session("s1")
        assert info is not None and info.metadata == {"user": "ada"} and info.message_count == 8
        assert set(store.sessions()) == {"s1", "s2"}
        assert store.update_metadata("s1", {"plan": "pro"}) == {"user": "ada", "plan": "pro"}
        assert store.clear("s1") and not store.clear("s1")
        assert store.messages("s1") == () and store.session("s1") is None
        with pytest.raises(ValueError, match="session id"):
            store.append("  ", exchange(1))


def test_windows_never_split_a_tool_exchange() -> None:
    messages = [*exchange(1), *exchange(2)]
    assert [m.role for m in window(messages, max_messages=6)] == ["user", "assistant", "tool", "assistant"]
    assert window(messages, max_messages=3) == ()
    assert window(messages, max_messages=100) == tuple(messages)
    small = window(messages, max_tokens=20, count_tokens=lambda m: 5)
    assert len(small) == 4 and small[0] == UserMessage(content="question 2")
    assert window([SystemMessage(content="x"), *exchange(1)]) == tuple(exchange(1))


def test_summaries_replace_older_turns(tmp_path: Path, server: OpenAIServer, model: ChatModel) -> None:
    with SessionStore.open(tmp_path / "state.sqlite") as store:
        memory = SessionMemory(store, "s", max_messages=10)
        for i in range(3):
            memory.save(exchange(i))
        server.script(text("Ada asked three questions about x."))
        asyncio.run(memory.compact(model, keep_last=4))
        sent = chat_requests(server)[0].body["messages"][1]["content"]
        assert "question 0" in sent and "question 1" in sent and "question 2" not in sent
        assert "[called lookup" in sent
        context = memory.load()
        assert context.summary == "Ada asked three questions about x."
        assert [m.role for m in context.messages] == ["user", "assistant", "tool", "assistant"]
        first = context.as_messages()[0]
        assert isinstance(first, SystemMessage) and "three questions" in first.content
        info = store.session("s")
        assert info is not None and info.summary_upto == 8 and info.message_count == 12
        server.script(text("Updated."))
        memory.save(exchange(3))
        asyncio.run(memory.compact(model, keep_last=0))
        assert "Summary so far:\nAda asked" in chat_requests(server)[1].body["messages"][1]["content"]
        assert memory.load().messages == ()
