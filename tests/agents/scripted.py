"""Helpers of the agent tests: scripted replies and what the loopback server was sent."""

from __future__ import annotations

import json
from typing import Any

from tests.support.openai_server import OpenAIServer, Reply, chat_completion


def calls(*items: tuple[str, dict[str, Any] | str]) -> Reply:
    """A reply asking for tool calls: (name, arguments) pairs; ids are call_0, call_1, ..."""
    return Reply.json(chat_completion(None, tool_calls=[
        {"id": f"call_{i}", "name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}
        for i, (name, args) in enumerate(items)]))


def text(content: str, **usage: int) -> Reply:
    return Reply.json(chat_completion(content, **usage))


def sent_messages(server: OpenAIServer, index: int = -1) -> list[dict[str, Any]]:
    chats = [r for r in server.requests if r.path.endswith("/chat/completions")]
    return chats[index].body["messages"]


def chat_requests(server: OpenAIServer) -> list[Any]:
    return [r for r in server.requests if r.path.endswith("/chat/completions")]
