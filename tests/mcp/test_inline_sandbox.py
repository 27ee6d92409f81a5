"""MCP servers given as a command line inside a workflow run in the OS sandbox, and only where the security policy
allows code-running tools (issue 10, item 1: every built-in tool that runs user-controlled commands)."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path
from typing import Any

import pytest
from tests.server.live import run, start_server

from partyflow import Engine
from partyflow.nodes.host import PromptSource
from partyflow.security.sandbox import SandboxSpec, wrap
from partyflow.server import ServerConfig
from partyflow.tools.mcp import MCPConfigError, inline_server, parse_server
from partyflow.tools.mcp.client import connect

# an MCP server in the standard library only (newline-delimited JSON-RPC), so the system Python runs it inside
SERVER = r'''
import json, os, sys
def send(i, result):
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": i, "result": result}) + "\n")
    sys.stdout.flush()
for line in sys.stdin:
    m = json.loads(line)
    i, method = m.get("id"), m.get("method")
    if method == "initialize":
        send(i, {"protocolVersion": m["params"]["protocolVersion"], "capabilities": {"tools": {}},
                 "serverInfo": {"name": "probe", "version": "1"}})
    elif method == "tools/list":
        send(i, {"tools": [{"name": "touch", "description": "Write or read a file.", "inputSchema": {
            "type": "object", "properties": {"path": {"type": "string"}, "read": {"type": "boolean"}}}}]})
    elif method == "tools/call":
        args = m["params"]["arguments"]
        try:
            text = open(args["path"]).read() if args.get("read") else str(open(args["path"], "w").write("x"))
        except OSError as exc:
            text = type(exc).__name__
        send(i, {"content": [{"type": "text", "text": text + " in " + os.getcwd()}], "isError": False})
    elif i is not None:
        send(i, {})
'''
INLINE = "python3 -c " + shlex.quote(SERVER)


def test_an_inline_command_runs_in_the_sandbox(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('secret = "sk-do-not-read"\n')
    victim = tmp_path / "victim.txt"
    config = inline_server(INLINE)
    assert config.sandbox

    async def go() -> list[str]:
        async with connect(config) as connection:
            texts = []
            for arguments in ({"path": str(victim)}, {"path": str(home / "config.toml"), "read": True},
                              {"path": "inside.txt"}):
                result = await connection.call_tool("touch", arguments)
                texts.append(result.content[0].text)
            return texts

    wrote_outside, read_home, wrote_inside = asyncio.run(go())
    assert wrote_outside == "FileNotFoundError in /scratch" and not victim.exists()
    assert read_home == "FileNotFoundError in /scratch"
    assert wrote_inside == "1 in /scratch"  # its throwaway folder is writable


def test_sandbox_is_for_command_servers_and_secrets_stay_off_the_command_line(tmp_path: Path) -> None:
    assert parse_server("s", {"command": "npx", "sandbox": True}).sandbox
    with pytest.raises(MCPConfigError, match="'sandbox' only applies to a 'command' server"):
        parse_server("s", {"url": "https://h/mcp", "sandbox": True})
    argv, env = wrap(["server"], SandboxSpec(scratch=tmp_path, env={"TOKEN": "s3cret-value"}))
    assert env["TOKEN"] == "s3cret-value" and not any("s3cret" in word for word in argv)


def _workflow() -> dict[str, Any]:
    return {"mcp": {"class_type": "MCPTools", "inputs": {"server": INLINE, "only": "", "prefix": ""}},
            "agent": {"class_type": "Agent", "inputs": {"model": ["model", 0], "tools": ["mcp", 0],
                                                        "system_prompt": "x", "task": "y"}},
            "model": {"class_type": "APIModelLoader", "inputs": {"provider": "default", "model": ""}},
            "show": {"class_type": "DisplayText", "inputs": {"text": ["agent", 0]}}}


def test_inline_commands_follow_the_code_tool_policy(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[providers.default]\ntype = "openai_compat"\n'
                                      'base_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n')
    engine = Engine(home=home, load_custom_nodes=False)
    live = start_server(engine, ServerConfig(port=0, shutdown_grace_s=1.0))
    try:
        async def post() -> tuple[int, Any]:
            async with live.session() as session, session.post("/prompt", json={"prompt": _workflow()}) as answer:
                return answer.status, await answer.json()

        status, body = run(post())
        assert status == 403 and body["error"]["extra_info"]["nodes"] == ["mcp"]
        assert "[server] allow_code_tools = true" in body["error"]["details"]
        engine.host.source = PromptSource(over_http=True)  # other routes: the node refuses when it runs
        result = engine.run({"mcp": _workflow()["mcp"]}, outputs=["mcp"], strict=False)
        assert not result.ok and "allow_code_tools" in result.error.message
    finally:
        live.stop()
        engine.close()
