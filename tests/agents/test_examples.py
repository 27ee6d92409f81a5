"""The examples in examples/agents, end to end against the scripted server (provider `default`)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.agents.scripted import calls, chat_requests, sent_messages, text
from tests.support.openai_server import OpenAIServer

from partyflow import Engine

EXAMPLES = Path(__file__).parents[2] / "examples" / "agents"


def test_customer_service_routes_looks_up_and_remembers(engine: Engine, server: OpenAIServer) -> None:
    workflow = engine.load_workflow(EXAMPLES / "customer_service.json")
    server.script(text('{"category": "faq"}'), calls(("faq_lookup", {"query": "refund how long"})),
                  text("Refunds arrive 5-7 working days after we receive your return."))
    first = engine.run(workflow)
    assert first.ok, first.error
    assert first.output("answer") == "Refunds arrive 5-7 working days after we receive your return."
    assert "complaint_agent" not in first.executed and len(chat_requests(server)) == 3
    lookup = json.loads(sent_messages(server)[-1]["content"])
    assert any("5-7 working days" in match for match in lookup["matches"])

    follow_up = engine.load_workflow(EXAMPLES / "customer_service.json",
                                     overrides=["question.value=It arrived broken and I am angry!"])
    server.script(text('{"category": "complaint"}'), text("I am sorry. What is your order number?"))
    second = engine.run(follow_up)
    assert second.ok, second.error
    assert second.output("answer") == "I am sorry. What is your order number?"
    remembered = [m.get("content") for m in sent_messages(server)]
    assert "How long does a refund take?" in remembered  # the session carried the first exchange

    server.script(text("something unrelated"))
    third = engine.run(engine.load_workflow(EXAMPLES / "customer_service.json",
                                            overrides=["question.value=Tell me a joke"]))
    assert third.ok and third.output("answer").startswith("I can help with orders")


def test_debate_takes_four_turns(engine: Engine, server: OpenAIServer) -> None:
    server.script(text("Cars pollute."), text("Shops need customers."), text("Buses bring them."),
                  text("Not everyone can walk."))
    result = engine.run(engine.load_workflow(EXAMPLES / "debate.json"))
    assert result.ok, result.error
    transcript = result.output("transcript")
    assert transcript.startswith("proponent: Cars pollute.\n\nopponent: Shops need customers.")
    assert transcript.endswith("opponent: Not everyone can walk.") and len(chat_requests(server)) == 4
    assert "Should city centres be closed" in sent_messages(server)[-1]["content"]
