"""Routers over real OpenAI-compatible servers on loopback (issue 18): failover, cooldowns, streaming, context
fallback, the final error, and the usage ledger and budgets around every member call."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.openai_server import OpenAIServer, Reply, chunk, text_stream

from partyflow.llm import ChatRequest, UserMessage
from partyflow.llm.config import ProvidersConfig
from partyflow.llm.errors import (
    AuthError,
    BudgetExceededError,
    InvalidRequestError,
    ProviderConnectionError,
    RouterExhaustedError,
)
from partyflow.llm.providers import create
from partyflow.llm.routing.health import Circuit, HealthBook
from partyflow.llm.usage.budgets import parse_budgets
from partyflow.llm.usage.ledger import CallLabels, UsageLedger
from partyflow.llm.usage.meter import Meter

NAMES = ("a", "b", "c")


@pytest.fixture(scope="module")
def running() -> Iterator[dict[str, OpenAIServer]]:
    servers = {name: OpenAIServer().start() for name in NAMES}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def servers(running: dict[str, OpenAIServer]) -> dict[str, OpenAIServer]:
    for server in running.values():
        server.reset()
    return running


def config(servers: dict[str, OpenAIServer], routers: dict[str, Any], **per_provider: dict[str, Any]
           ) -> ProvidersConfig:
    providers = {name: {"type": "openai_compat", "base_url": server.url, "model": f"model-{name}", "timeout": 5,
                        "price_input_per_1k": 1.0, "price_output_per_1k": 2.0, **per_provider.get(name, {})}
                 for name, server in servers.items()}
    return ProvidersConfig.from_mapping({"providers": providers, "routers": routers}, environ={})


def ask(text: str = "hello", **fields: Any) -> ChatRequest:
    return ChatRequest(messages=(UserMessage(content=text),), **fields)


def requests_to(server: OpenAIServer) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/chat/completions"))


PRIORITY = {"r": {"members": ["a", "b", "c"], "cooldown": 60}}


@pytest.mark.parametrize("failure", [Reply.error(500, "boom"), Reply.error(503, "overloaded"),
                                     Reply.error(429, "slow down"), Reply.dropped(), Reply.malformed()])
def test_a_failing_member_fails_over_to_the_next(servers: dict[str, OpenAIServer], failure: Reply) -> None:
    servers["a"].script(failure)
    router = create("r", config(servers, PRIORITY))
    response = router.chat(ask())
    assert (response.provider, response.text) == ("b", "echo: hello")
    assert requests_to(servers["a"]) == 1 and requests_to(servers["c"]) == 0


def test_a_429_cools_the_member_down_for_its_retry_after(servers: dict[str, OpenAIServer]) -> None:
    health = HealthBook()
    servers["a"].script(Reply.error(429, "slow down", headers={"Retry-After": "120"}))
    cfg = config(servers, PRIORITY)
    assert create("r", cfg, health=health).chat(ask()).provider == "b"
    assert create("r", cfg, health=health).chat(ask()).provider == "b"  # a new router, the same book
    assert requests_to(servers["a"]) == 1  # a was not asked again while resting
    view = health.snapshot("a")
    assert view.circuit is Circuit.OPEN and 100 < view.open_until - time.monotonic() <= 120


def test_a_hanging_member_is_abandoned_after_the_router_timeout(servers: dict[str, OpenAIServer]) -> None:
    servers["a"].script(Reply.slow(30))
    router = create("r", config(servers, {"r": {"members": ["a", "b"], "timeout": 0.5}}))
    started = time.perf_counter()
    assert router.chat(ask()).provider == "b"
    assert time.perf_counter() - started < 3


def test_an_unreachable_member_fails_over(servers: dict[str, OpenAIServer]) -> None:
    cfg = config(servers, PRIORITY, a={"base_url": "http://127.0.0.1:9/v1"})
    assert create("r", cfg).chat(ask()).provider == "b"


@pytest.mark.parametrize(("failure", "error"), [
    (Reply.error(400, "temperature must be <= 2"), InvalidRequestError),
    (Reply.error(401, "bad key"), AuthError),
])
def test_client_errors_never_fail_over(servers: dict[str, OpenAIServer], failure: Reply, error: type) -> None:
    servers["a"].script(failure)
    with pytest.raises(error):
        create("r", config(servers, PRIORITY)).chat(ask())
    assert requests_to(servers["b"]) == 0


def test_context_overflow_goes_to_a_member_with_a_larger_window(servers: dict[str, OpenAIServer]) -> None:
    servers["a"].script(Reply.error(400, "This model's maximum context length is 4096 tokens",
                                    code="context_length_exceeded"))
    cfg = config(servers, PRIORITY, a={"context_window": 4096}, b={"context_window": 4096},
                 c={"context_window": 128000})
    assert create("r", cfg).chat(ask()).provider == "c"
    assert requests_to(servers["b"]) == 0


def test_when_every_member_fails_the_error_says_why_for_each(servers: dict[str, OpenAIServer]) -> None:
    servers["a"].script(Reply.error(500, "boom"))
    servers["b"].script(Reply.error(429, "quota"))
    servers["c"].script(Reply.error(503, "down for maintenance"))
    with pytest.raises(RouterExhaustedError) as caught:
        create("r", config(servers, PRIORITY)).chat(ask())
    message = str(caught.value)
    assert [member for member, _ in caught.value.attempts] == ["a", "b", "c"]
    for words in ("a: HTTP 500: the server failed: boom", "b: HTTP 429: rate limited: quota", "c: HTTP 503",
                  "down for maintenance"):
        assert words in message


def test_nested_routers_fail_over_across_levels(servers: dict[str, OpenAIServer]) -> None:
    servers["a"].script(Reply.error(500, "boom"))
    servers["b"].script(Reply.error(500, "boom"))
    cfg = config(servers, {"inner": {"members": ["a", "b"]}, "outer": {"members": ["inner", "c"]}})
    assert create("outer", cfg).chat(ask()).provider == "c"


def test_async_calls_fail_over_too(servers: dict[str, OpenAIServer]) -> None:
    servers["a"].script(Reply.error(502, "bad gateway"))

    async def main() -> str:
        router = create("r", config(servers, PRIORITY))
        try:
            return (await router.achat(ask())).provider
        finally:
            await router.aclose()

    assert asyncio.run(main()) == "b"


def test_streams_fail_over_before_the_first_token_only(servers: dict[str, OpenAIServer]) -> None:
    servers["a"].script(Reply.error(500, "boom"))
    cfg = config(servers, PRIORITY)
    pieces = [c.text for c in create("r", cfg).stream(ask("one two")) if c.text]
    assert "".join(pieces) == "echo: one two" and requests_to(servers["b"]) == 1
    servers["a"].script(Reply.stream([chunk({"role": "assistant", "content": ""}), *text_stream(["x", "y"])],
                                     drop_after=3))
    received: list[str] = []
    with pytest.raises(ProviderConnectionError):
        for piece in create("r", cfg).stream(ask()):
            received.append(piece.text)
    assert received == ["x"] and requests_to(servers["b"]) == 1  # b never asked: "x" already reached us


def test_async_streams_fail_over(servers: dict[str, OpenAIServer]) -> None:
    servers["a"].script(Reply.error(429, "slow"))

    async def main() -> str:
        texts = [c.text async for c in create("r", config(servers, PRIORITY)).astream(ask("hi")) if c.text]
        return "".join(texts)

    assert asyncio.run(main()) == "echo: hi"


def test_rpm_limits_send_the_excess_to_the_next_member(servers: dict[str, OpenAIServer]) -> None:
    cfg = config(servers, PRIORITY, a={"rpm": 2})
    health = HealthBook()
    providers = [create("r", cfg, health=health).chat(ask()).provider for _ in range(4)]
    assert providers == ["a", "a", "b", "b"] and requests_to(servers["a"]) == 2


# --- the ledger and budgets ----------------------------------------------------------------------------------

@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[UsageLedger]:
    with UsageLedger(tmp_path / "state.sqlite") as opened:
        yield opened


def test_every_member_call_is_in_the_ledger(servers: dict[str, OpenAIServer], ledger: UsageLedger) -> None:
    servers["a"].script(Reply.error(500, "boom"))
    meter = Meter(ledger, labels=CallLabels(workflow="wf", prompt_id="p1", node_id="7", user="ann"))
    response = create("r", config(servers, PRIORITY), meter=meter).chat(ask())
    assert response.usage is not None and response.usage.cost == pytest.approx((7 * 1 + 3 * 2) / 1000)
    rows = list(ledger.rows())
    assert [(r["provider"], r["router"], r["outcome"]) for r in reversed(rows)] == [("a", "r", "error"),
                                                                                   ("b", "r", "ok")]
    ok = rows[0]
    assert (ok["model"], ok["prompt_tokens"], ok["completion_tokens"], ok["workflow"], ok["prompt_id"],
            ok["node_id"], ok["user"]) == ("model-b", 7, 3, "wf", "p1", "7", "ann")
    assert ok["latency"] > 0 and "boom" in rows[1]["error"]
    assert ledger.prompt_usage("p1")["cost"] == pytest.approx(0.013)


def test_a_spent_budget_refuses_before_sending(servers: dict[str, OpenAIServer], ledger: UsageLedger) -> None:
    budgets = parse_budgets({"budgets": {"a-daily": {"provider": "a", "period": "day", "max_tokens": 10}}})
    meter = Meter(ledger, budgets=budgets)
    cfg = config(servers, PRIORITY)
    assert create("a", cfg, meter=meter).chat(ask()).provider == "a"  # 10 tokens: now spent
    with pytest.raises(BudgetExceededError, match=r"budget 'a-daily' \(provider 'a': 10 tokens per day\) is spent"):
        create("a", cfg, meter=meter).chat(ask())
    assert requests_to(servers["a"]) == 1
    assert create("r", cfg, meter=meter).chat(ask()).provider == "b"  # a router skips the spent member


def test_a_router_budget_refuses_the_whole_router(servers: dict[str, OpenAIServer], ledger: UsageLedger) -> None:
    budgets = parse_budgets({"budgets": {"r-month": {"router": "r", "period": "month", "max_cost": 0.01}}})
    meter = Meter(ledger, budgets=budgets)
    cfg = config(servers, PRIORITY)
    create("r", cfg, meter=meter).chat(ask())  # 0.013 spent
    with pytest.raises(BudgetExceededError, match="budget 'r-month'"):
        create("r", cfg, meter=meter).chat(ask())
    assert sum(requests_to(s) for s in servers.values()) == 1


def test_a_provider_that_lies_about_usage_is_estimated(servers: dict[str, OpenAIServer],
                                                       ledger: UsageLedger) -> None:
    servers["a"].script(Reply.json({"id": "x", "object": "chat.completion", "created": 0, "model": "model-a",
                                    "choices": [{"index": 0, "finish_reason": "stop",
                                                 "message": {"role": "assistant", "content": "a" * 40}}],
                                    "usage": {"prompt_tokens": -5, "completion_tokens": -1, "total_tokens": -6}}))
    response = create("a", config(servers, {}), meter=Meter(ledger)).chat(ask())
    row = next(ledger.rows())
    assert row["completion_tokens"] == 11 and row["prompt_tokens"] > 0 and "negative" in row["note"]
    assert response.usage is not None and response.usage.completion_tokens == 11


def test_a_crash_mid_call_leaves_the_call_unfinished(servers: dict[str, OpenAIServer], tmp_path: Path) -> None:
    servers["a"].script(Reply.slow(60))
    cfg_path = tmp_path / "config.py"
    cfg_path.write_text(textwrap.dedent(f"""
        import os
        from pathlib import Path
        from partyflow.llm import ChatRequest, UserMessage
        from partyflow.llm.config import ProvidersConfig
        from partyflow.llm.providers import create
        from partyflow.llm.usage.ledger import UsageLedger
        from partyflow.llm.usage.meter import Meter
        cfg = ProvidersConfig.from_mapping({{"providers": {{"a": {{"type": "openai_compat",
            "base_url": "{servers['a'].url}", "model": "m", "timeout": 60}}}}}}, environ={{}})
        provider = create("a", cfg, meter=Meter(UsageLedger(Path(r"{tmp_path / 'state.sqlite'}"))))
        provider.chat(ChatRequest(messages=(UserMessage(content="hi"),)))
    """), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen([sys.executable, str(cfg_path)], env=env) as process:
        assert servers["a"].wait_for_requests(1), "the subprocess's call never reached the server"
        process.kill()
    with UsageLedger(tmp_path / "state.sqlite") as ledger:
        rows = list(ledger.rows())
    assert [(r["provider"], r["outcome"], r["finished"]) for r in rows] == [("a", "unfinished", None)]
