"""Our MCP client against a real MCP server process (tests/mcp/servers/echo_server.py), over stdio and HTTP."""

from __future__ import annotations

import json
import time

import pytest
from tests.mcp.conftest import echo_config

from partyflow.tools import ToolError
from partyflow.tools.mcp import (
    MCPClientError,
    MCPConfigError,
    MCPServerConfig,
    bound_tools,
    connect,
    load_tools,
)

pytestmark = pytest.mark.anyio


def transports(http_url: str) -> dict[str, MCPServerConfig]:
    return {"stdio": echo_config(timeout=10), "http": MCPServerConfig(name="echo", url=http_url, timeout=10)}


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_lists_and_calls_tools_resources_prompts(transport: str, http_echo: str) -> None:
    config = transports(http_echo)[transport]
    async with connect(config) as connection:
        assert connection.server_name == "echo-server"
        tools = {tool.name: tool for tool in await connection.list_tools()}
        assert {"add", "echo", "slow", "crash", "fail", "fetch"} <= set(tools)
        resources = await connection.list_resources()
        assert [str(r.uri) for r in resources] == ["notes://readme"]
        assert await connection.read_resource("notes://readme") == "partyflow test notes: MCP works."
        prompts = await connection.list_prompts()
        assert [p.name for p in prompts] == ["summarize"]
        prompt = await connection.get_prompt("summarize", {"topic": "bees"})
        assert prompt.messages == [{"role": "user",
                                    "content": "Summarize what is known about bees in three sentences."}]
        with pytest.raises(MCPClientError, match="refused resource 'notes://missing'"):
            await connection.read_resource("notes://missing")
        bound = {tool.name: tool for tool in await bound_tools(connection, prefix="e_")}
        assert await bound["e_add"].invoke({"a": 2, "b": 40}) == "42"  # two calls, one connection
        assert await bound["e_echo"].invoke({"text": "hi", "shout": True}) == "HI"


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_tools_connect_per_call_with_the_servers_schema(transport: str, http_echo: str) -> None:
    tools = {tool.name: tool for tool in await load_tools(transports(http_echo)[transport], only=["add", "fail"])}
    assert set(tools) == {"add", "fail"}
    add = tools["add"]
    assert add.parameters["required"] == ["a", "b"] and add.parameters["properties"]["a"]["type"] == "integer"
    assert add.description == "Add two integers." and add.metadata["kind"] == "mcp"
    assert await add.invoke({"a": 1, "b": 2}) == "3"
    with pytest.raises(ToolError, match="failed on purpose: because"):
        await tools["fail"].invoke({"reason": "because"})
    with pytest.raises(ToolError, match="has no tool 'nope'"):
        await load_tools(transports(http_echo)[transport], only=["add", "nope"])


async def test_secrets_come_from_the_environment_and_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_TEST_SECRET", "hunter2-very-secret")
    config = echo_config(env={"GIVEN": "${MCP_TEST_SECRET}"}, timeout=10)
    assert "hunter2" not in repr(config) and "MCP_TEST_SECRET" not in repr(config)
    tools = {tool.name: tool for tool in await load_tools(config, only=["env"])}
    assert await tools["env"].invoke({"name": "GIVEN"}) == "hunter2-very-secret"
    with pytest.raises(MCPClientError) as failed:  # the dying server prints ECHO_TOKEN to its stderr
        await load_tools(echo_config("--die", env={"ECHO_TOKEN": "${MCP_TEST_SECRET}"}))
    assert "hunter2" not in str(failed.value) and "token=[REDACTED]" in str(failed.value)
    monkeypatch.delenv("MCP_TEST_SECRET")
    with pytest.raises(MCPConfigError, match=r"needs the environment variable \$MCP_TEST_SECRET"):
        await load_tools(config)


async def test_a_server_that_crashes_mid_call_is_a_clear_tool_error() -> None:
    tools = {tool.name: tool for tool in await load_tools(echo_config(timeout=10))}
    started = time.monotonic()
    with pytest.raises(MCPClientError, match="closed the connection"):
        await tools["crash"].invoke({})
    assert time.monotonic() - started < 8


async def test_an_http_server_that_crashes_mid_call_is_a_clear_tool_error() -> None:
    import subprocess
    import sys

    from tests.mcp.conftest import ECHO_SERVER

    process = subprocess.Popen([sys.executable, str(ECHO_SERVER), "--http"], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{int(process.stdout.readline().split()[1])}/mcp"  # type: ignore[union-attr]
        tools = {tool.name: tool for tool in await load_tools(MCPServerConfig(name="web", url=url, timeout=10))}
        with pytest.raises(MCPClientError, match=r"MCP server 'web' \(http://127.0.0.1:\d+/mcp\)"):
            await tools["crash"].invoke({})
        with pytest.raises(MCPClientError, match="cannot be reached"):
            await tools["add"].invoke({"a": 1, "b": 1})
    finally:
        process.kill()
        process.wait(timeout=10)


async def test_a_server_that_exits_at_start_shows_its_stderr() -> None:
    with pytest.raises(MCPClientError, match="closed the connection.*its last output: echo-server: cannot start"):
        await load_tools(echo_config("--die", timeout=5))


async def test_a_hanging_server_fails_the_handshake_within_its_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(MCPClientError, match="did not complete the MCP handshake within 1.5 s"):
        await load_tools(echo_config("--hang", connect_timeout=1.5))
    assert time.monotonic() - started < 1.5 + 6  # the deadline plus the SDK's bounded process shutdown


async def test_a_slow_tool_times_out_as_a_tool_error() -> None:
    tools = {tool.name: tool for tool in await load_tools(echo_config(timeout=1))}
    started = time.monotonic()
    with pytest.raises(MCPClientError, match="did not answer within 1 s"):
        await tools["slow"].invoke({"seconds": 30})
    assert time.monotonic() - started < 1 + 6


async def test_missing_command_and_unreachable_url_say_so() -> None:
    with pytest.raises(MCPClientError, match="could not be started.*on PATH"):
        await load_tools(MCPServerConfig(name="gone", command="/no/such/mcp-server"))
    with pytest.raises(MCPClientError, match="cannot be reached"):
        await load_tools(MCPServerConfig(name="off", url="http://127.0.0.1:9/mcp", connect_timeout=5))


async def test_structured_only_results_are_sent_as_json() -> None:
    import mcp_types as types

    from partyflow.tools.mcp import tool_result_text

    result = types.CallToolResult(content=[], structured_content={"rows": [1, 2]})
    assert json.loads(tool_result_text(result, "q")) == {"rows": [1, 2]}
    image = types.CallToolResult(content=[types.ImageContent(type="image", data="aGVsbG8=", mime_type="image/png")])
    assert tool_result_text(image, "q").startswith("[image image/png")
