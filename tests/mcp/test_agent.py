"""Agents with MCP tools end to end through the Engine: the MCP nodes, the research example, failing servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.agents.scripted import calls, chat_requests, sent_messages, text
from tests.support.openai_server import OpenAIServer

from partyflow import Engine
from partyflow.engine.engine import PromptValidationError

EXAMPLES = Path(__file__).parents[2] / "examples" / "agents"


def agent_workflow(server: str, only: str = "", *, tool_timeout: float = 30.0) -> dict[str, Any]:
    return {
        "model": {"class_type": "APIModelLoader", "inputs": {"provider": "default", "model": ""}},
        "mcp": {"class_type": "MCPTools", "inputs": {"server": server, "only": only, "prefix": ""}},
        "agent": {"class_type": "Agent", "inputs": {
            "model": ["model", 0], "tools": ["mcp", 0], "system_prompt": "Use the tools.",
            "task": "What is 2 + 3?", "max_steps": 4, "tool_timeout": tool_timeout}},
        "answer": {"class_type": "DisplayText", "inputs": {"text": ["agent", 0]}},
    }


def tool_messages(server: OpenAIServer) -> list[dict[str, Any]]:
    return [m for m in sent_messages(server) if m["role"] == "tool"]


def test_agent_calls_an_mcp_tool_of_a_configured_server(engine: Engine, scripted: OpenAIServer) -> None:
    scripted.script(calls(("add", {"a": 2, "b": 3})), text("2 + 3 = 5."))
    result = engine.run(agent_workflow("echo", only="add"))
    assert result.ok, result.error
    assert result.output("answer") == "2 + 3 = 5."
    offered = chat_requests(scripted)[0].body["tools"]
    assert [t["function"]["name"] for t in offered] == ["add"]
    assert offered[0]["function"]["parameters"]["required"] == ["a", "b"]
    assert [m["content"] for m in tool_messages(scripted)] == ["5"]


def test_config_secrets_reach_the_server_process(engine: Engine, scripted: OpenAIServer) -> None:
    scripted.script(calls(("env", {"name": "ECHO_TOKEN"})), text("done"))
    assert engine.run(agent_workflow("echo", only="env")).ok
    assert [m["content"] for m in tool_messages(scripted)] == ["s3cret-value-42"]


def test_a_crashing_server_is_an_error_the_agent_sees_and_survives(engine: Engine, scripted: OpenAIServer) -> None:
    scripted.script(calls(("crash", {}), ("add", {"a": 1, "b": 1})), text("The crash tool failed; 1 + 1 = 2."))
    result = engine.run(agent_workflow("echo", only="crash,add"))
    assert result.ok, result.error
    crashed, added = tool_messages(scripted)
    assert "closed the connection" in json.loads(crashed["content"])["error"]
    assert added["content"] == "2"
    assert result.output("answer") == "The crash tool failed; 1 + 1 = 2."


def test_a_hanging_tool_is_stopped_by_the_agents_tool_timeout(engine: Engine, scripted: OpenAIServer) -> None:
    scripted.script(calls(("slow", {"seconds": 60})), text("It took too long."))
    result = engine.run(agent_workflow("echo", only="slow", tool_timeout=1.0))
    assert result.ok, result.error
    assert "did not finish within 1 s" in json.loads(tool_messages(scripted)[0]["content"])["error"]


def test_an_unknown_server_name_is_refused_before_running_listing_the_configured_ones(engine: Engine) -> None:
    with pytest.raises(PromptValidationError) as refused:
        engine.run(agent_workflow("ecko"))
    [line] = refused.value.result.summary()
    assert line.startswith("node mcp (MCPTools), input 'server': no MCP server 'ecko'")
    assert "configured: echo, fetch" in line


def test_resource_and_prompt_nodes(engine: Engine) -> None:
    workflow = {
        "readme": {"class_type": "MCPResource", "inputs": {"server": "echo", "uri": "notes://readme"}},
        "summary": {"class_type": "MCPPrompt", "inputs": {"server": "echo", "name": "summarize",
                                                        "arguments": '{"topic": "owls"}'}},
        "show_readme": {"class_type": "DisplayText", "inputs": {"text": ["readme", 0]}},
        "show_prompt": {"class_type": "DisplayText", "inputs": {"text": ["summary", 0]}},
    }
    result = engine.run(workflow, outputs=["show_readme", "show_prompt", "summary"])
    assert result.ok, result.error
    assert result.output("readme") == "partyflow test notes: MCP works."
    assert result.output("summary", 0) == "Summarize what is known about owls in three sentences."
    assert result.output("summary", 1) == [{"role": "user", "content": result.output("summary", 0)}]


def test_the_research_agent_example_reads_a_page_through_mcp(engine: Engine, scripted: OpenAIServer) -> None:
    scripted.script(calls(("fetch", {"url": "https://modelcontextprotocol.io/"})),
                    text("MCP is an open protocol connecting AI applications to tools and data "
                         "(source: https://modelcontextprotocol.io/)."))
    result = engine.run(engine.load_workflow(EXAMPLES / "research_agent.json"))
    assert result.ok, result.error
    assert result.output("answer").startswith("MCP is an open protocol")
    names = sorted(t["function"]["name"] for t in chat_requests(scripted)[0].body["tools"])
    assert names == ["current_time", "fetch"]
    assert tool_messages(scripted)[0]["content"].startswith("The Model Context Protocol (MCP) is an open protocol")
