"""Routers and the usage ledger in workflows (issue 18): Router Loader -> Chat -> Usage on an engine, history's
cost per prompt and /metrics on a live server, and `partyflow models usage` on the same home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.server.live import finished, receive_until, run, start_server
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.providers import node, openai_table, write_config

from partyflow import Engine
from partyflow.llm.usage.ledger import UsageLedger
from partyflow.server import ServerConfig


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[OpenAIServer, OpenAIServer]]:
    with OpenAIServer() as first, OpenAIServer() as second:
        yield first, second


@pytest.fixture
def home(tmp_path: Path, pair: tuple[OpenAIServer, OpenAIServer]) -> Path:
    for server in pair:
        server.reset()
    first, second = pair
    return write_config(tmp_path / "home",
                        openai_table("cheap", first.url, model="cheap-model", price_input_per_1k=1.0,
                                     price_output_per_1k=1.0),
                        openai_table("strong", second.url, model="strong-model", price_input_per_1k=10.0,
                                     price_output_per_1k=10.0),
                        '[routers.smart]\nmembers = ["cheap", "strong"]\nstrategy = "least_cost"\n'
                        '[budgets.strong-daily]\nprovider = "strong"\nperiod = "day"\nmax_cost = 1000.0\n')


def workflow(prompt: str = "hello") -> dict[str, Any]:
    return {"model": node("LLMRouterLoader", router="smart"),
            "chat": node("LLMChat", model=["model", 0], system_prompt="", user_prompt=prompt, stream=False),
            "usage": node("LLMUsage", after=["chat", 0]),
            "show": node("DisplayValue", value=["usage", 0])}


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    engine = Engine(home=home, load_custom_nodes=False)
    yield engine
    engine.close()


def test_a_router_fails_over_inside_a_workflow_and_usage_reports_the_run(
        engine: Engine, pair: tuple[OpenAIServer, OpenAIServer], home: Path) -> None:
    first, _ = pair
    first.script(Reply.error(503, "overloaded"))
    prompt = workflow()
    prompt["show"] = node("DisplayText", text=["usage", 3])
    result = engine.run(prompt)
    assert result.status == "success", result.error
    summary = result.outputs["show"]["text"][0]
    assert summary == "2 model call(s), 10 tokens (7 prompt + 3 completion), cost 0.1"
    with UsageLedger(home / "state.sqlite") as ledger:
        rows = list(reversed(list(ledger.rows())))
    assert [(r["provider"], r["router"], r["outcome"], r["node_id"]) for r in rows] == [
        ("cheap", "smart", "error", "chat"), ("strong", "smart", "ok", "chat")]
    assert {r["prompt_id"] for r in rows} == {result.prompt_id}


def test_the_router_loader_refuses_an_unknown_router(engine: Engine) -> None:
    prompt = workflow()
    prompt["model"] = node("LLMRouterLoader", router="nope")
    with pytest.raises(Exception, match="no router 'nope' is configured"):
        result = engine.run(prompt)
        raise AssertionError(result.error)


def test_history_and_metrics_show_cost_per_prompt(engine: Engine) -> None:
    live = start_server(engine, ServerConfig(port=0, shutdown_grace_s=1.0))
    try:
        async def scenario() -> tuple[dict[str, Any], str]:
            async with live.session() as http, http.ws_connect(live.ws_url("c")) as ws:
                await ws.receive_json()
                body = await (await http.post("/prompt", json={"prompt": workflow(), "client_id": "c"})).json()
                await receive_until(ws, finished(body["prompt_id"]))
                history = await (await http.get(f"/history/{body['prompt_id']}")).json()
                metrics = await (await http.get("/metrics")).text()
                return history[body["prompt_id"]], metrics

        entry, metrics = run(scenario())
    finally:
        live.stop()
    assert entry["llm_usage"]["calls"] == 1 and entry["llm_usage"]["cost"] == pytest.approx(0.01)
    assert entry["llm_usage"]["by_provider"]["cheap"]["calls"] == 1
    assert "partyflow_prompt_llm_cost_count 1.0" in metrics
    assert "partyflow_prompt_llm_cost_sum 0.01" in metrics


def test_models_usage_reports_the_ledger(engine: Engine, home: Path) -> None:
    assert engine.run(workflow("one")).status == "success"
    assert engine.run(workflow("two")).status == "success"
    env = {**os.environ, "PARTYFLOW_HOME": str(home), "COLUMNS": "200"}

    def usage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "partyflow", "models", "usage", *args], capture_output=True,
                              text=True, env=env, timeout=60)

    done = usage("--by", "provider", "--since", "1d", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [(r["key"], r["calls"], r["total_tokens"]) for r in report["rows"]] == [("cheap", 2, 20)]
    assert report["rows"][0]["cost"] == pytest.approx(0.02)
    by_day = json.loads(usage("--by", "day", "--json").stdout)
    assert len(by_day["rows"]) == 1 and by_day["rows"][0]["calls"] == 2
    table = usage("--by", "model")
    assert table.returncode == 0 and "cheap-model" in table.stdout
    bad = usage("--by", "colour")
    assert bad.returncode == 2 and "--by must be one of" in bad.stderr
    bad_since = usage("--since", "last tuesday")
    assert bad_since.returncode == 2 and "neither a duration" in bad_since.stderr


def test_a_signed_in_users_daily_budget_stops_their_prompts(tmp_path: Path, pair: tuple[OpenAIServer, OpenAIServer]
                                                            ) -> None:
    """Issue 17 item 7: budgets per user, from the server's accounts: each call is labelled with who queued the
    prompt, and a runner over their daily tokens is refused before the next call is made."""
    import requests

    from partyflow.access import AccessStore

    first, _ = pair
    first.reset()
    home = write_config(tmp_path / "home", openai_table("cheap", first.url, model="cheap-model"),
                        '[budgets.amy-daily]\nuser = "amy"\nperiod = "day"\nmax_tokens = 5\n')
    engine = Engine(home=home, load_custom_nodes=False)
    with AccessStore(engine.home.state_db) as store:
        store.add_user("amy", "runner")
        amy, _ = store.create_token("amy")
    live = start_server(engine, ServerConfig(port=0, shutdown_grace_s=1.0))
    try:
        async def queue_and_wait(prompt_id: str) -> dict[str, Any]:
            async with live.session() as http, http.ws_connect(live.ws_url("amy-tab", token=amy)) as ws:
                await ws.receive()
                body = {"prompt": {"model": node("APIModelLoader", provider="cheap"),
                                   "chat": node("LLMChat", model=["model", 0], system_prompt="",
                                                user_prompt=f"hi from {prompt_id}", stream=False),
                                   "show": node("DisplayText", text=["chat", 0])},
                        "client_id": "amy-tab", "prompt_id": prompt_id}
                async with http.post("/prompt", json=body, headers={"Authorization": f"Bearer {amy}"}) as answer:
                    assert answer.status == 200, await answer.text()
                await receive_until(ws, finished(prompt_id))
            return requests.get(f"{live.url}/history/{prompt_id}", headers={"Authorization": f"Bearer {amy}"},
                                timeout=30).json()[prompt_id]

        spent = run(queue_and_wait("first"))
        assert spent["status"]["status_str"] == "success" and spent["llm_usage"]["calls"] == 1
        refused = run(queue_and_wait("second"))
        assert refused["status"]["status_str"] == "error"
        assert "amy-daily" in json.dumps(refused["status"]["messages"])  # the budget is named
        assert len(first.requests) == 1  # refused before a second call reached the provider
        with UsageLedger(home / "state.sqlite") as ledger:
            assert {r["user"] for r in ledger.rows()} == {"amy"}
    finally:
        live.stop()
        engine.close()
