"""MCP server configuration (config.toml and inline) and the `partyflow mcp list` / `mcp tools` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from partyflow.cli.main import app
from partyflow.config import Home
from partyflow.tools.mcp import MCPConfigError, inline_server, load_servers, parse_server


def test_servers_from_config_toml(home: Path) -> None:
    servers = load_servers(Home(home))
    assert sorted(servers) == ["echo", "fetch"]
    echo = servers["echo"]
    assert echo.transport == "stdio" and echo.timeout == 10 and echo.env == {"ECHO_TOKEN": "${PARTYFLOW_TEST_MCP_TOKEN}"}
    assert echo.resolve({"PARTYFLOW_TEST_MCP_TOKEN": "abc"}).env == {"ECHO_TOKEN": "abc"}


@pytest.mark.parametrize(("table", "problem"), [
    ({}, "either 'command'"),
    ({"command": "x", "url": "http://h/mcp"}, "either 'command'"),
    ({"url": "ftp://h"}, "must start with http"),
    ({"command": "x", "headers": {"A": "b"}}, "'headers' only apply"),
    ({"command": "x", "api_key": "sk-do-not-echo-me"}, "api_key: is not a known field"),
    ({"command": "x", "timeout": -1}, "timeout"),
])
def test_bad_tables_are_refused_without_echoing_values(table: dict, problem: str) -> None:
    with pytest.raises(MCPConfigError, match=problem) as refused:
        parse_server("s", table)
    assert "do-not-echo" not in str(refused.value) and "[mcp.servers.s]" in str(refused.value)


def test_inline_servers() -> None:
    assert inline_server("https://example.com/mcp").url == "https://example.com/mcp"
    stdio = inline_server("uvx mcp-server-fetch --ignore-robots-txt")
    assert stdio.command == "uvx" and stdio.args == ("mcp-server-fetch", "--ignore-robots-txt")
    with pytest.raises(MCPConfigError):
        inline_server("  ")


def test_missing_header_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_server("web", {"url": "https://h/mcp", "headers": {"Authorization": "Bearer ${WEB_TOKEN_X}"}})
    monkeypatch.delenv("WEB_TOKEN_X", raising=False)
    with pytest.raises(MCPConfigError, match=r"headers.Authorization needs the environment variable \$WEB_TOKEN_X"):
        config.resolve()
    assert config.resolve({"WEB_TOKEN_X": "t0k3n"}).headers == {"Authorization": "Bearer t0k3n"}


def test_cli_lists_servers_and_their_tools(home: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["--home", str(home), "mcp", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.output)}
    assert rows["echo"]["env"] == ["ECHO_TOKEN"] and "s3cret" not in listed.output
    tools = runner.invoke(app, ["--home", str(home), "mcp", "tools", "echo", "--json"])
    assert tools.exit_code == 0, tools.output
    listing = json.loads(tools.output)
    assert {"add", "fetch"} <= {t["name"] for t in listing["tools"]}
    assert [r["uri"] for r in listing["resources"]] == ["notes://readme"]
    assert [p["name"] for p in listing["prompts"]] == ["summarize"]
    unknown = runner.invoke(app, ["--home", str(home), "mcp", "tools", "nope"])
    assert unknown.exit_code == 2 and "configured: echo, fetch" in unknown.output
