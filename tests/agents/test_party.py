"""Parties without the engine: agent-as-tool, round tables in fixed and moderated order, intent classification."""

from __future__ import annotations

import asyncio

from tests.agents.scripted import calls, chat_requests, sent_messages, text
from tests.support.openai_server import OpenAIServer

from partyflow.agents import Agent, AgentLimits, Category, RoundTable, agent_tool, classify, parse_categories
from partyflow.llm import ChatModel


def test_agent_as_tool_delegates_and_reports_failures(server: OpenAIServer, model: ChatModel) -> None:
    researcher = Agent(model, name="researcher", system_prompt="You research.")
    boss = Agent(model, tools=[agent_tool(researcher, description="Finds facts.")], system_prompt="You lead.")
    server.script(calls(("researcher", {"task": "capital of France?"})), text("Paris"), text("It is Paris."))
    result = asyncio.run(boss.run("Where is the Louvre?"))
    assert result.ok and result.answer == "It is Paris."
    assert result.steps[0].tool_runs[0].output == "Paris"
    requests = chat_requests(server)
    assert requests[1].body["messages"] == [{"role": "system", "content": "You research."},
                                            {"role": "user", "content": "capital of France?"}]
    limited = Agent(model, name="slow", limits=AgentLimits(max_steps=1), tools=[])
    tool = agent_tool(limited)
    server.script(text("x"))
    assert asyncio.run(tool.invoke({"task": "go"})) == "x"


def test_round_table_in_fixed_order_until_the_stop_phrase(server: OpenAIServer, model: ChatModel) -> None:
    pro = Agent(model, name="pro", system_prompt="Argue for.")
    con = Agent(model, name="con", system_prompt="Argue against.")
    server.script(text("Cats are great."), text("Dogs are better."), text("Fine, AGREED."))
    turns = []
    result = asyncio.run(RoundTable([pro, con], max_turns=6, stop_phrase="agreed").run(
        "cats or dogs", on_turn=turns.append))
    assert result.stop_reason == "stop_phrase" and [t.speaker for t in result.transcript] == ["pro", "con", "pro"]
    assert len(turns) == 3 and result.usage.total_tokens == 30
    third = sent_messages(server)[1]["content"]
    assert "pro: Cats are great.\n\ncon: Dogs are better." in third and "You are pro." in third
    assert result.text().startswith("pro: Cats are great.")


def test_round_table_with_a_moderator(server: OpenAIServer, model: ChatModel) -> None:
    a = Agent(model, name="alice")
    b = Agent(model, name="bob")
    server.script(text('{"next": "bob"}'), text("bob speaks"), text('{"next": "nobody"}'), text("alice speaks"),
                  text('{"next": "DONE"}'))
    result = asyncio.run(RoundTable([a, b], moderator=model, max_turns=5).run("plans"))
    assert result.stop_reason == "moderator" and [t.speaker for t in result.transcript] == ["bob", "alice"]
    assert result.decisions[0] == "bob" and "named nobody" in result.decisions[1]
    assert '{"next": "DONE"}' in chat_requests(server)[0].body["messages"][0]["content"]


def test_round_table_max_turns(server: OpenAIServer, model: ChatModel) -> None:
    result = asyncio.run(RoundTable([Agent(model, name="solo")], max_turns=2).run("echo"))
    assert result.stop_reason == "max_turns" and len(result.transcript) == 2


def test_classify_matches_leniently_and_falls_back(server: OpenAIServer, model: ChatModel) -> None:
    categories = parse_categories("billing: money questions\n# comment\nfaq: how-to questions\nother")
    assert categories == [Category("billing", "money questions"), Category("faq", "how-to questions"),
                          Category("other", "")]
    server.script(text('{"category": "FAQ"}'), text("I think billing."), text("no idea"))
    assert asyncio.run(classify(model, "how do I reset?", categories)).index == 1
    assert asyncio.run(classify(model, "refund", categories)).category == "billing"
    fallback = asyncio.run(classify(model, "??", categories))
    assert fallback.category == "other" and not fallback.matched
    system = sent_messages(server, 0)[0]["content"]
    assert "- billing: money questions" in system
