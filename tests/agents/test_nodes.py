"""The agents node pack in real workflows: a real engine, a config.toml provider and the loopback server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.agents.scripted import calls, chat_requests, sent_messages, text
from tests.support.openai_server import OpenAIServer
from tests.support.providers import loader, node

from partyflow import Engine
from partyflow.engine.events import CustomMessage, Event

MODEL = loader("default")


def agent_prompt(**inputs: Any) -> dict[str, Any]:
    return {"model": MODEL, "tools": node("CalculatorTool"),
            "agent": node("Agent", **{"model": ["model", 0], "system_prompt": "Be exact.", "task": "What is 6*7?",
                                      "tools": ["tools", 0], **inputs}),
            "show": node("DisplayText", text=["agent", 0])}


def run(engine: Engine, prompt: dict[str, Any], events: list[Event] | None = None) -> Any:
    sink = events.append if events is not None else (lambda event: None)
    return engine.run(prompt, sinks=[sink])


def test_agent_node_runs_tools_and_streams_steps(engine: Engine, server: OpenAIServer) -> None:
    server.script(calls(("calculator", {"expression": "6*7"})), text("42"))
    events: list[Event] = []
    result = run(engine, agent_prompt(), events)
    assert result.ok, result.error
    assert result.output("show") == "42"
    steps = result.output("agent", 1)
    assert steps["stop_reason"] == "final" and steps["steps"][0]["tool_runs"][0]["output"] == "42"
    assert result.output("agent", 2)["total_tokens"] == 20
    progress = [e for e in events if isinstance(e, CustomMessage) and e.event == "partyflow.agent.step"]
    assert [p.data["step"]["index"] for p in progress] == [0, 1] and progress[0].data["node"] == "agent"
    assert [m["role"] for m in result.output("agent", 4)] == ["system", "user", "assistant", "tool", "assistant"]


def test_agent_node_remembers_sessions(engine: Engine, server: OpenAIServer, home: Path) -> None:
    server.script(text("Nice to meet you, Ada."), text("You are Ada."))
    first = agent_prompt(session_id="s-1", task="I am Ada.")
    assert run(engine, first).ok
    second = agent_prompt(session_id="s-1", task="Who am I?")
    assert run(engine, second).ok
    roles = [(m["role"], m.get("content")) for m in sent_messages(server)]
    assert roles[1:] == [("user", "I am Ada."), ("assistant", "Nice to meet you, Ada."), ("user", "Who am I?")]
    server.script(text("Still Ada."))
    again = run(engine, agent_prompt(session_id="s-1", task="Who am I?"))
    assert again.output("agent") == "Still Ada."  # not a cached answer: the session has grown since
    assert len(sent_messages(server)) == 6
    load = {"load": node("LoadMemory", session_id="s-1"), "show": node("DisplayValue", value=["load", 2])}
    loaded = run(engine, load)
    assert loaded.output("load", 2)["messages"] == 6
    cleared = run(engine, {"clear": node("ClearMemory", session_id="s-1")})
    assert cleared.output("clear") is True
    assert (home / "state.sqlite").exists()


def test_agent_node_reports_model_errors(engine: Engine, server: OpenAIServer) -> None:
    server.script(calls(("calculator", {"expression": "1"})), text("not json"))
    result = run(engine, agent_prompt(output_schema='{"type": "object"}', max_steps=2))
    assert not result.ok and "failed after 2 step(s)" in result.error.message
    server.script(text("plain"))
    lenient = run(engine, agent_prompt(output_schema='{"type": "object"}', max_steps=1, fail_on_error=False))
    assert lenient.ok and lenient.output("agent", 1)["stop_reason"] == "invalid_output"


def test_memory_nodes_append_and_summarise(engine: Engine, server: OpenAIServer) -> None:
    prompt = {"append": node("AppendMemory", session_id="t", user="hello", assistant="hi there",
                             metadata=["meta", 0]),
              "meta": node("JSONParse", text='{"channel": "email"}')}
    first = run(engine, prompt)
    assert first.ok, first.error
    assert first.output("append") == 2
    server.script(text("They greeted each other."))
    summary = run(engine, {"model": MODEL, "sum": node("SummarizeMemory", model=["model", 0], session_id="t",
                                                       keep_last=0)})
    assert summary.ok and summary.output("sum") == "They greeted each other."
    loaded = run(engine, {"load": node("LoadMemory", session_id="t"), "show": node("DisplayText",
                                                                                   text=["load", 1])})
    assert loaded.output("load", 1) == "They greeted each other." and loaded.output("load", 2)["metadata"] == {
        "channel": "email"}


def test_intent_switch_runs_only_the_chosen_branch(engine: Engine, server: OpenAIServer) -> None:
    def prompt() -> dict[str, Any]:
        return {"model": MODEL,
                "router": node("IntentRouter", model=["model", 0], text="where is my parcel",
                               categories="orders\nsmalltalk"),
                "orders": node("Agent", model=["model", 0], system_prompt="orders desk", task="help"),
                "chat": node("Agent", model=["model", 0], system_prompt="chatty", task="chat"),
                "switch": node("IntentSwitch", index=["router", 1], branch_0=["orders", 0], branch_1=["chat", 0]),
                "show": node("DisplayText", text=["switch", 0])}

    server.script(text('{"category": "smalltalk"}'), text("Lovely weather!"))
    result = run(engine, prompt())
    assert result.ok, result.error
    assert result.output("show") == "Lovely weather!" and result.output("router") == "smalltalk"
    assert "orders" not in result.executed and len(chat_requests(server)) == 2
    assert chat_requests(server)[1].body["messages"][0]["content"] == "chatty"


def test_workflow_and_agent_as_tool(engine: Engine, server: OpenAIServer, home: Path) -> None:
    flows = home / "user" / "workflows"
    flows.mkdir(parents=True)
    (flows / "greet.json").write_text(json.dumps({
        "1": {"class_type": "TextValue", "inputs": {"value": "world"}, "_meta": {"title": "input:name"}},
        "2": {"class_type": "TextTemplate", "inputs": {"template": "Hello, {a}!", "a": ["1", 0]},
              "_meta": {"title": "output:greeting"}}}))
    prompt = {
        "model": MODEL,
        "greet": node("WorkflowAsTool", workflow="greet", name="greet", description="Greets someone."),
        "helper": node("AgentProfile", model=["model", 0], name="helper", system_prompt="You help."),
        "tools": node("AgentAsTool", agent=["helper", 0], description="Ask the helper.", tools=["greet", 0]),
        "agent": node("Agent", model=["model", 0], system_prompt="Boss.", task="Greet Ada", tools=["tools", 0]),
        "show": node("DisplayText", text=["agent", 0]),
    }
    server.script(calls(("greet", {"name": "Ada"}), ("helper", {"task": "say hi"})), text("hi from helper"),
                  text("Done: Hello, Ada!"))
    result = run(engine, prompt)
    assert result.ok, result.error
    runs = result.output("agent", 1)["steps"][0]["tool_runs"]
    assert [r["output"] for r in runs] == ['{"greeting": "Hello, Ada!"}', "hi from helper"]
    assert {t["function"]["name"] for t in chat_requests(server)[0].body["tools"]} == {"greet", "helper"}


def test_round_table_node(engine: Engine, server: OpenAIServer) -> None:
    prompt = {"model": MODEL,
              "a": node("AgentProfile", model=["model", 0], name="ann", system_prompt="For."),
              "b": node("AgentProfile", model=["model", 0], name="ben", system_prompt="Against."),
              "table": node("RoundTable", agent_1=["a", 0], agent_2=["b", 0], topic="tea?", max_turns=3,
                            moderator=["model", 0]),
              "show": node("DisplayText", text=["table", 0])}
    server.script(text('{"next": "ben"}'), text("No tea."), text('{"next": "ann"}'), text("Yes tea."),
                  text('{"next": "DONE"}'))
    events: list[Event] = []
    result = run(engine, prompt, events)
    assert result.ok, result.error
    assert result.output("show") == "ben: No tea.\n\nann: Yes tea." and result.output("table", 1) == "Yes tea."
    assert result.output("table", 2)["stop_reason"] == "moderator"
    turns = [e.data["speaker"] for e in events if isinstance(e, CustomMessage) and e.event == "partyflow.party.turn"]
    assert turns == ["ben", "ann"]


def test_definition_only_tools_are_refused(engine: Engine, server: OpenAIServer) -> None:
    prompt = agent_prompt()
    prompt["tools"] = node("ToolDefinition", name="x", description="", parameters='{"type": "object"}')
    result = run(engine, prompt)
    assert not result.ok and "only a definition" in result.error.message


SHOUT_PACK = '''
class Shout:
    RETURN_TYPES = ("STRING",)
    FUNCTION = "shout"
    CATEGORY = "test"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""})}}

    def shout(self, text):
        return (text.upper(),)


NODE_CLASS_MAPPINGS = {"Shout": Shout}
'''


def test_workflow_tools_run_on_the_engine_running_the_agent(home: Path, server: OpenAIServer,
                                                            tmp_path: Path) -> None:
    # The pack exists only for this engine (an extra node path, not the home's custom_nodes): a workflow tool can
    # use it only when its workflow runs on this engine, not on one started anew over the home.
    pack = tmp_path / "packs" / "shout_pack"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(SHOUT_PACK, encoding="utf-8")
    flows = home / "user" / "workflows"
    flows.mkdir(parents=True)
    (flows / "shout.json").write_text(json.dumps({
        "1": {"class_type": "TextValue", "inputs": {"value": ""}, "_meta": {"title": "input:text"}},
        "2": {"class_type": "Shout", "inputs": {"text": ["1", 0]}, "_meta": {"title": "output:loud"}}}))
    prompt = {"model": MODEL, "shout": node("WorkflowAsTool", workflow="shout", name="shout", description="Shouts."),
              "agent": node("Agent", model=["model", 0], system_prompt="Boss.", task="Shout hi", tools=["shout", 0]),
              "show": node("DisplayText", text=["agent", 0])}
    server.script(calls(("shout", {"text": "hi"})), text("HI"))
    engine = Engine(home=home, load_custom_nodes=False, extra_node_paths=[tmp_path / "packs"])
    try:
        started: list[str] = []
        engine.subscribe(lambda event: started.append(event.prompt_id) if event.type == "execution_start" else None)
        result = run(engine, prompt)
    finally:
        engine.close()
    assert result.ok, result.error
    assert result.output("agent", 1)["steps"][0]["tool_runs"][0]["output"] == '{"loud": "HI"}'
    assert len(set(started)) == 2 and result.prompt_id in started  # the tool's run was this engine's second prompt


def test_without_a_host_engine_workflow_tools_start_their_own(home: Path) -> None:
    # A ComfyUI install (or an isolated worker) offers no `run_workflow`: the tool then runs on a new engine.
    import asyncio

    from partyflow.builtin_nodes.agents.runner import HomeWorkflowRunner, workflow_runner
    from partyflow.tools import ToolError, workflow_tool

    runner = workflow_runner(home)
    assert isinstance(runner, HomeWorkflowRunner)
    greet = {"1": {"class_type": "TextValue", "inputs": {"value": "world"}, "_meta": {"title": "input:name"}},
             "2": {"class_type": "TextTemplate", "inputs": {"template": "Hello, {a}!", "a": ["1", 0]},
                   "_meta": {"title": "output:greeting"}}}
    assert asyncio.run(workflow_tool(greet, runner, name="greet").invoke({"name": "Bo"})) == {"greeting": "Hello, Bo!"}
    greet["2"]["class_type"] = "NoSuchNode"
    with pytest.raises(ToolError, match="not valid.*NoSuchNode"):
        asyncio.run(workflow_tool(greet, runner, name="greet").invoke({}))
