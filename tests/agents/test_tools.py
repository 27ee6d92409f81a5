"""The tool model and the built-in tools, without a model in the loop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from partyflow import Engine
from partyflow.tools import (
    ArgumentError,
    Tool,
    ToolError,
    find_interface,
    function_tool,
    result_text,
    workflow_tool,
)
from partyflow.tools.builtin import (
    calculator_tool,
    current_time_tool,
    evaluate,
    file_tools,
    host_allowed,
    http_fetch_tool,
    lookup_tool,
    search_lines,
    text_search_tool,
    workflow_runner_tool,
)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_function_tool_schema_from_hints_and_docstring() -> None:
    def book(city: str, nights: int = 1, tags: list[str] | None = None) -> dict[str, Any]:
        """Book a hotel room.

        Args:
            city: Where to stay.
            nights: How many nights,
                at least one.
        """
        return {"city": city, "nights": nights, "tags": tags}

    tool = function_tool(book)
    assert tool.name == "book" and tool.description == "Book a hotel room."
    props = tool.parameters["properties"]
    assert props["city"] == {"type": "string", "description": "Where to stay."}
    assert props["nights"]["description"] == "How many nights, at least one." and props["nights"]["default"] == 1
    assert tool.parameters["required"] == ["city"]
    assert "title" not in tool.parameters
    assert run(tool.invoke({"city": "Oslo", "nights": "2"})) == {"city": "Oslo", "nights": 2, "tags": None}
    with pytest.raises(ArgumentError, match="city"):
        run(tool.invoke({"nights": 2}))
    with pytest.raises(ArgumentError, match="(?i)extra"):
        run(tool.invoke({"city": "Oslo", "stars": 5}))


def test_function_tool_refuses_unhinted_parameters() -> None:
    def bad(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(TypeError, match="type hint"):
        function_tool(bad)


def test_plain_tool_checks_schema_and_results_must_be_json() -> None:
    async def echo(**kw: Any) -> Any:
        return kw

    tool = Tool("echo", "", {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}, echo)
    assert run(tool.invoke({"n": 3})) == {"n": 3}
    with pytest.raises(ArgumentError, match="integer"):
        run(tool.invoke({"n": "x"}))
    assert tool.definition.name == "echo"
    assert result_text({"a": 1}) == '{"a": 1}' and result_text("plain") == "plain"
    with pytest.raises(ToolError, match="not JSON"):
        result_text(object())


@pytest.mark.parametrize(("expression", "value"), [
    ("1 + 2 * 3", 7), ("(17 * 23) / 4", 97.75), ("2 ** 10", 1024), ("sqrt(16) + abs(-2)", 6.0), ("-pi < 0", None),
])
def test_calculator(expression: str, value: Any) -> None:
    if value is None:
        with pytest.raises(ToolError):
            evaluate(expression)
    else:
        assert evaluate(expression) == value


@pytest.mark.parametrize("expression", ["__import__('os')", "().__class__", "9 ** 9 ** 9", "1/0", "open('x')",
                                        "[x for x in range(3)]"])
def test_calculator_refuses(expression: str) -> None:
    with pytest.raises(ToolError):
        evaluate(expression)
    assert run(calculator_tool().invoke({"expression": "6*7"})) == 42


def test_current_time_uses_the_zone() -> None:
    tool = current_time_tool(clock=lambda: datetime(2024, 1, 2, 12, 0, tzinfo=UTC))
    assert run(tool.invoke({"timezone": "Asia/Tokyo"}))["iso"] == "2024-01-02T21:00:00+09:00"
    with pytest.raises(ToolError, match="time zone"):
        run(tool.invoke({"timezone": "Mars/Olympus"}))


def test_file_tools_are_confined(tmp_path: Path) -> None:
    inbox, outbox = tmp_path / "input", tmp_path / "output"
    inbox.mkdir()
    (inbox / "notes.txt").write_text("hello")
    (tmp_path / "secret.txt").write_text("key")
    read, write, listing = file_tools(inbox, outbox)
    assert run(read.invoke({"path": "notes.txt"})) == "hello"
    assert run(listing.invoke({})) == ["notes.txt"]
    for path in ("../secret.txt", "/etc/passwd", str(tmp_path / "secret.txt")):
        with pytest.raises(ToolError, match="outside"):
            run(read.invoke({"path": path}))
    assert run(write.invoke({"path": "a/b.txt", "content": "x"})) == {"path": "a/b.txt", "bytes": 1}
    assert (outbox / "a" / "b.txt").read_text() == "x"
    with pytest.raises(ToolError, match="outside"):
        run(write.invoke({"path": "../input/notes.txt", "content": "overwrite"}))
    (inbox / "link").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(ToolError, match="outside"):
        run(read.invoke({"path": "link"}))


def test_text_search_and_lookup(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("Refunds take 5 days.\nShipping is free.\n")
    (tmp_path / "b.txt").write_text("refund policy: 30 days\n")
    assert search_lines(tmp_path, "refund days") == [
        {"file": "a.md", "line": 1, "text": "Refunds take 5 days."}, {"file": "b.txt", "line": 1,
                                                                      "text": "refund policy: 30 days"}]
    assert run(text_search_tool(tmp_path).invoke({"query": "shipping"}))[0]["line"] == 2
    faq = lookup_tool("Q: shipping cost? A: free.\n\nQ: refund time? A: 5 days.")
    assert run(faq.invoke({"query": "how long does a refund take"}))["matches"] == ["Q: refund time? A: 5 days."]


def test_http_fetch_allow_list_and_limits() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/big":
            return httpx.Response(200, content=b"x" * 5000)
        if request.url.path == "/away":
            return httpx.Response(302, headers={"location": "http://evil.internal/steal"})
        return httpx.Response(200, text="ok", headers={"content-type": "text/plain"})

    tool = http_fetch_tool(["api.example.com", "*.docs.org"], max_bytes=1000, transport=httpx.MockTransport(handler))
    assert run(tool.invoke({"url": "https://api.example.com/x"}))["text"] == "ok"
    assert run(tool.invoke({"url": "https://v1.docs.org/x"}))["status"] == 200
    big = run(tool.invoke({"url": "https://api.example.com/big"}))
    assert big["truncated"] and len(big["text"]) == 1000
    for url, message in (("https://other.com/", "allow-list"), ("file:///etc/passwd", "http"),
                         ("https://api.example.com/away", "evil.internal")):
        with pytest.raises(ToolError, match=message):
            run(tool.invoke({"url": url}))
    assert not host_allowed("docs.org", ["*.docs.org"]) and host_allowed("a.b.docs.org", ["*.docs.org"])


def _greeting_workflow() -> dict[str, Any]:
    return {
        "1": {"class_type": "TextValue", "inputs": {"value": "world"}, "_meta": {"title": "input:name"}},
        "2": {"class_type": "TextTemplate", "inputs": {"template": "Hello, {a}!", "a": ["1", 0]},
              "_meta": {"title": "output:greeting"}},
    }


def test_workflow_tool_runs_through_the_engine(tmp_path: Path) -> None:
    inputs, outputs = find_interface(_greeting_workflow())
    assert [i.name for i in inputs] == ["name"] and [o.name for o in outputs] == ["greeting"]
    engine = Engine(home=tmp_path / "home", load_custom_nodes=False)
    try:
        tool = workflow_tool(_greeting_workflow(), engine, name="greet")
        assert tool.parameters["properties"]["name"] == {"type": "string", "default": "world"}
        assert run(tool.invoke({"name": "Ada"})) == {"greeting": "Hello, Ada!"}
        assert run(tool.invoke({})) == {"greeting": "Hello, world!"}
        broken = _greeting_workflow()
        broken["2"]["inputs"]["template"] = "Hello, {missing}!"
        with pytest.raises(ToolError, match="workflow failed"):
            run(workflow_tool(broken, engine, name="broken").invoke({}))
        folder = tmp_path / "flows"
        folder.mkdir()
        (folder / "greet.json").write_text(__import__("json").dumps(_greeting_workflow()))
        runner = workflow_runner_tool(folder, engine)
        assert "greet: inputs name; outputs greeting" in runner.description
        assert run(runner.invoke({"workflow": "greet", "inputs": {"name": "Bo"}})) == {"greeting": "Hello, Bo!"}
        with pytest.raises(ToolError, match="no workflow"):
            run(runner.invoke({"workflow": "../greet"}))
    finally:
        engine.close()
    with pytest.raises(ValueError, match="output:NAME"):
        workflow_tool({"1": {"class_type": "TextValue", "inputs": {"value": ""}}}, engine, name="x")
