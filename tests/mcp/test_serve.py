"""`partyflow mcp serve` (stdio and streamable HTTP) tested with the SDK's own client: published workflows are
listed as tools and run when called."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters

pytestmark = pytest.mark.anyio


def ui_node(node_id: int, class_type: str, widgets: list[Any], inputs: list[tuple[str, str, int]] = (),
            outputs: list[tuple[str, str, list[int]]] = ()) -> dict[str, Any]:
    return {"id": node_id, "type": class_type, "pos": [node_id * 300, 100], "size": [280, 120], "mode": 0,
            "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
            "outputs": [{"name": n, "type": t, "links": links, "slot_index": i}
                        for i, (n, t, links) in enumerate(outputs)],
            "properties": {}, "widgets_values": widgets}


def published(nodes: list[dict[str, Any]], links: list[list[Any]], publish: dict[str, Any]) -> dict[str, Any]:
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": len(links), "nodes": nodes,
            "links": links, "groups": [], "config": {}, "version": 0.4,
            "extra": {"partyflow": {"publish": publish}}}


def save(home: Path, name: str, document: dict[str, Any]) -> None:
    path = home / "user" / "default" / "workflows" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")


@pytest.fixture
def served_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    save(home, "echo", published(
        [ui_node(1, "TextTemplate", ["you said: {a}"], outputs=[("text", "STRING", [1])]),
         ui_node(2, "DisplayText", [], inputs=[("text", "STRING", 1)], outputs=[("text", "STRING", [])])],
        [[1, 1, 0, 2, 0, "STRING"]],
        {"model": "echo-bot", "description": "Quote the text back.", "input": {"node": 1, "input": "a"},
         "output": {"node": 2}}))
    save(home, "parse", published(
        [ui_node(1, "JSONParse", ["{}"], outputs=[("data", "JSON", [])])], [],
        {"model": "parse json", "input": {"node": 1, "input": "text"}, "output": {"node": 1}}))
    save(home, "plain", {"nodes": [], "links": [], "extra": {}})  # not published: not a tool
    return home


def command(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "partyflow", "--home", str(home), "mcp", "serve", *args]


async def exercise(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"echo-bot", "parse_json"}
    assert tools["echo-bot"].description == "Quote the text back."
    assert tools["echo-bot"].input_schema["required"] == ["a"]
    result = await client.call_tool("echo-bot", {"a": "hello"})
    assert not result.is_error and result.content[0].text == "you said: hello"
    parsed = await client.call_tool("parse_json", {"text": '{"x": [1, 2]}'})
    assert json.loads(parsed.content[0].text) == {"x": [1, 2]}
    failed = await client.call_tool("parse_json", {"text": "not json"})
    assert failed.is_error and "the workflow 'parse json'" in failed.content[0].text
    missing = await client.call_tool("echo-bot", {})
    assert missing.is_error and "'a' is required" in missing.content[0].text


async def test_stdio_serve_with_the_sdk_client(served_home: Path) -> None:
    params = StdioServerParameters(command=sys.executable, args=command(served_home)[1:],
                                   env={"PYTHONPATH": os.pathsep.join(sys.path)}, cwd=str(served_home))
    async with Client(params, read_timeout_seconds=30) as client:
        assert client.server_info is not None and client.server_info.name == "partyflow"
        await exercise(client)


@pytest.fixture
def http_serve(served_home: Path) -> Iterator[str]:
    process = subprocess.Popen(command(served_home, "--transport", "http", "--port", "0"), stdout=subprocess.PIPE,
                               text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("partyflow MCP server at "), f"the MCP server did not start: {line!r}"
        yield line.split(" at ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(timeout=15)


async def test_http_serve_with_the_sdk_client(http_serve: str) -> None:
    async with Client(http_serve, read_timeout_seconds=30) as client:
        await exercise(client)


def test_http_serve_refuses_other_interfaces_without_a_token(served_home: Path) -> None:
    done = subprocess.run(command(served_home, "--transport", "http", "--listen", "0.0.0.0"), capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PARTYFLOW_API_TOKEN": ""})
    assert done.returncode == 2 and "give --token" in done.stderr


def test_http_serve_takes_the_homes_user_tokens(served_home: Path) -> None:
    """Issue 17: with accounts in the home, the MCP endpoint wants a user's token like the server does."""
    import httpx

    from partyflow.access import AccessStore

    with AccessStore(served_home / "state.sqlite") as store:
        store.add_user("runner", "runner")
        store.add_user("viewer", "viewer")
        runner, _ = store.create_token("runner")
        viewer, _ = store.create_token("viewer")
    process = subprocess.Popen(command(served_home, "--transport", "http", "--port", "0"), stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PARTYFLOW_API_TOKEN": ""})
    try:
        line = process.stdout.readline() if process.stdout else ""
        url = line.split(" at ", 1)[1].strip()
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        headers = {"Accept": "application/json, text/event-stream"}
        assert httpx.post(url, json=body, headers=headers, timeout=30).status_code == 401
        refused = httpx.post(url, json=body, headers={**headers, "Authorization": f"Bearer {viewer}"}, timeout=30)
        assert refused.status_code == 401 and "may not run workflows" in refused.text
        stale = httpx.post(url, json=body, headers={**headers, "Authorization": "Bearer pf_0_nope"}, timeout=30)
        assert stale.status_code == 401 and "not valid" in stale.text
        allowed = httpx.post(url, json=body, headers={**headers, "Authorization": f"Bearer {runner}"}, timeout=30)
        assert allowed.status_code != 401, allowed.text
    finally:
        process.terminate()
        process.wait(timeout=15)
