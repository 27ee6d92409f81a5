"""Routers: ours against LiteLLM's `Router`, on the same loopback OpenAI-compatible servers (issue 18).

(a) Added latency per call: a router of two members whose first answers at once, against the raw `openai` client
    calling that member directly. Calls alternate between the three so drift hits all alike; medians.
(b) Time to a successful answer when the first member fails: it returns 500, returns 429 (Retry-After: 30), or
    hangs (both routers' per-attempt timeout is 1 s); the second answers. A fresh router per run, so no health
    carries over from the previous run; median of the runs. Goal: <= LiteLLM's.
(c) Weighted routing: how far the share of first picks is from the weights (60/30/10) over 10,000 selections,
    as the largest absolute error in percentage points. Only the choice is measured (no HTTP), for both: our
    strategy as `RouterModel` runs it, LiteLLM's `get_available_deployment` with `simple-shuffle`.
(d) Ledger write cost: the two writes a metered call makes (unfinished row before, outcome after) in the home's
    state.sqlite, per call; and a metered router call against an unmetered one.

LiteLLM runs fully offline here: its model price map is read from the installed package (no download).
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the price map from the network
os.environ.setdefault("LITELLM_TELEMETRY", "False")

import logging  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import openai  # noqa: E402

from _support import Goal, parse_args, report_goals, show_table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, when run as a script

from tests.support.openai_server import OpenAIServer, Reply  # noqa: E402

from partyflow.llm import ChatRequest, UserMessage  # noqa: E402
from partyflow.llm.config import ProvidersConfig  # noqa: E402
from partyflow.llm.providers import create  # noqa: E402
from partyflow.llm.routing.health import HealthBook  # noqa: E402
from partyflow.llm.usage.ledger import CallLabels, UsageLedger  # noqa: E402
from partyflow.llm.usage.meter import Meter  # noqa: E402

PROMPT = "Say hello in five words."
MESSAGES = [{"role": "user", "content": PROMPT}]
WEIGHTS = {"a": 6, "b": 3, "c": 1}
SELECTIONS = 10_000
HANG_TIMEOUT = 1.0


def litellm_router(servers: dict[str, OpenAIServer], *, order: list[str], timeout: float = 30.0,
                   weighted: bool = False) -> Any:
    """LiteLLM's Router over the same servers: one model group per member with fallbacks in `order` (its way of
    saying "this one first, then that one"), or one weighted group."""
    import litellm
    from litellm import Router

    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)
    logging.getLogger("LiteLLM Router").setLevel(logging.CRITICAL)
    if weighted:
        model_list = [{"model_name": "smart", "litellm_params": {
            "model": f"openai/model-{name}", "api_base": servers[name].url, "api_key": "none",
            "weight": WEIGHTS[name]}} for name in order]
        return Router(model_list=model_list, routing_strategy="simple-shuffle", num_retries=0)
    model_list = [{"model_name": name, "litellm_params": {"model": f"openai/model-{name}",
                                                         "api_base": servers[name].url, "api_key": "none"}}
                  for name in order]
    return Router(model_list=model_list, fallbacks=[{order[0]: order[1:]}], num_retries=0, timeout=timeout,
                  allowed_fails=3, cooldown_time=30)


def our_config(servers: dict[str, OpenAIServer], *, order: list[str], timeout: float | None = None,
               weighted: bool = False) -> ProvidersConfig:
    providers = {name: {"type": "openai_compat", "base_url": server.url, "model": f"model-{name}", "timeout": 30}
                 for name, server in servers.items()}
    router: dict[str, Any] = {"members": order}
    if weighted:
        router.update(strategy="weighted", weights=dict(WEIGHTS))
    if timeout is not None:
        router["timeout"] = timeout
    return ProvidersConfig.from_mapping({"providers": providers, "routers": {"smart": router}}, environ={})


def alternate(actions: dict[str, Callable[[], Any]], calls: int) -> dict[str, float]:
    """Median seconds per call of each action, measured in alternation after a warm-up."""
    for _ in range(20):
        for action in actions.values():
            action()
    samples: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(calls):
        for name, action in actions.items():
            started = time.perf_counter()
            action()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def added_latency(servers: dict[str, OpenAIServer], calls: int) -> dict[str, float]:
    raw = openai.OpenAI(base_url=servers["a"].url, api_key="none", max_retries=0)
    ours = create("smart", our_config(servers, order=["a", "b"]), health=HealthBook())
    theirs = litellm_router(servers, order=["a", "b"])
    request = ChatRequest(messages=(UserMessage(content=PROMPT),))
    try:
        return alternate({
            "raw": lambda: raw.chat.completions.create(model="model-a", messages=MESSAGES),
            "ours": lambda: ours.chat(request),
            "litellm": lambda: theirs.completion(model="a", messages=MESSAGES),
        }, calls)
    finally:
        raw.close()
        ours.close()


def time_to_success(servers: dict[str, OpenAIServer], failure: Reply, runs: int, *,
                    timeout: float) -> dict[str, float]:
    """Median seconds until the second member's answer, with the first member failing as `failure` says."""
    request = ChatRequest(messages=(UserMessage(content=PROMPT),))
    results: dict[str, list[float]] = {"ours": [], "litellm": []}
    for _ in range(runs):
        for name in results:
            for server in servers.values():
                server.reset()
            servers["a"].script(failure)
            if name == "ours":
                router = create("smart", our_config(servers, order=["a", "b"], timeout=timeout), health=HealthBook())
                started = time.perf_counter()
                answer = router.chat(request).provider
                seconds = time.perf_counter() - started
                router.close()
                assert answer == "b", answer
            else:
                router = litellm_router(servers, order=["a", "b"], timeout=timeout)
                started = time.perf_counter()
                reply = router.completion(model="a", messages=MESSAGES)
                seconds = time.perf_counter() - started
                assert reply.model.endswith("model-b"), reply.model
            results[name].append(seconds)
    for server in servers.values():
        server.reset()
    return {name: statistics.median(values) for name, values in results.items()}


def weighted_error(servers: dict[str, OpenAIServer]) -> dict[str, float]:
    """The largest gap, in percentage points, between the share of first picks and the configured weights."""
    from partyflow.llm.routing.router import RouterModel

    ours = create("smart", our_config(servers, order=["a", "b", "c"], weighted=True), health=HealthBook())
    assert isinstance(ours, RouterModel)
    request = ChatRequest(messages=(UserMessage(content=PROMPT),))
    picks = Counter(ours._start(request)[1].order[0] for _ in range(SELECTIONS))  # the choice a call would make
    theirs = litellm_router(servers, order=["a", "b", "c"], weighted=True)
    their_picks: Counter[str] = Counter()
    for _ in range(SELECTIONS):
        deployment = theirs.get_available_deployment(model="smart", messages=MESSAGES)
        their_picks[deployment["litellm_params"]["model"].removeprefix("openai/model-")] += 1
    total = sum(WEIGHTS.values())

    def error(counts: Counter[str]) -> float:
        return max(abs(counts[name] / SELECTIONS - weight / total) * 100 for name, weight in WEIGHTS.items())

    return {"ours": error(picks), "litellm": error(their_picks)}


def ledger_cost(servers: dict[str, OpenAIServer], calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="partyflow-bench-ledger-") as tmp:
        ledger = UsageLedger(Path(tmp) / "state.sqlite")
        labels = CallLabels(workflow="bench", prompt_id="p", node_id="1", user="u")
        started = time.perf_counter()
        for _ in range(calls * 5):
            call = ledger.begin("a", "model-a", labels, router="smart")
            ledger.finish(call, "ok", prompt_tokens=7, completion_tokens=3, cost=0.001, latency=0.01)
        writes = (time.perf_counter() - started) / (calls * 5)
        config = our_config(servers, order=["a", "b"])
        request = ChatRequest(messages=(UserMessage(content=PROMPT),))
        plain = create("smart", config, health=HealthBook())
        metered = create("smart", config, health=HealthBook(), meter=Meter(ledger, labels=labels))
        times = alternate({"plain": lambda: plain.chat(request), "metered": lambda: metered.chat(request)}, calls)
        ledger.close()
    return {"writes": writes, **times}


def main() -> int:
    args = parse_args(__doc__ or "", runs=5)
    random.seed(0)
    servers = {name: OpenAIServer().start() for name in ("a", "b", "c")}
    try:
        latency = added_latency(servers, calls=200)
        failures = {
            "500": time_to_success(servers, Reply.error(500, "boom"), args.runs, timeout=30.0),
            "429": time_to_success(servers, Reply.error(429, "slow down", headers={"Retry-After": "30"}),
                                   args.runs, timeout=30.0),
            "hang": time_to_success(servers, Reply.slow(30), args.runs, timeout=HANG_TIMEOUT),
        }
        weighted = weighted_error(servers)
        ledger = ledger_cost(servers, calls=200)
    finally:
        for server in servers.values():
            server.stop()

    ms = 1000.0
    our_added, their_added = latency["ours"] - latency["raw"], latency["litellm"] - latency["raw"]
    show_table("Added latency per call (median; two-member router, first member answers)",
               ["path", "ms per call", "added vs raw client"],
               [["raw openai client", f"{latency['raw'] * ms:.3f}", "-"],
                ["partyflow router", f"{latency['ours'] * ms:.3f}", f"{our_added * ms:+.3f} ms"],
                ["LiteLLM Router", f"{latency['litellm'] * ms:.3f}", f"{their_added * ms:+.3f} ms"]])
    show_table("Time to a successful answer when the first member fails (median)",
               ["first member", "partyflow ms", "LiteLLM ms", "ratio"],
               [[kind, f"{v['ours'] * ms:.1f}", f"{v['litellm'] * ms:.1f}", f"{v['ours'] / v['litellm']:.2f}x"]
                for kind, v in failures.items()])
    show_table(f"Weighted routing 60/30/10 over {SELECTIONS:,} selections", ["router", "max error (pp)"],
               [["partyflow", f"{weighted['ours']:.2f}"], ["LiteLLM", f"{weighted['litellm']:.2f}"]])
    show_table("Usage ledger", ["figure", "value"],
               [["begin + finish (two commits, WAL, synchronous=NORMAL)", f"{ledger['writes'] * 1e6:.0f} us/call"],
                ["router call, unmetered", f"{ledger['plain'] * ms:.3f} ms"],
                ["router call, metered", f"{ledger['metered'] * ms:.3f} ms"]])
    goals = [
        Goal("added latency lower than LiteLLM's", our_added < their_added,
             f"{our_added * ms:.3f} ms vs {their_added * ms:.3f} ms"),
        *[Goal(f"time to success after a {kind} <= LiteLLM's", v["ours"] <= v["litellm"],
               f"{v['ours'] * ms:.1f} ms vs {v['litellm'] * ms:.1f} ms") for kind, v in failures.items()],
        Goal("weighted distribution error <= 1.5 pp", weighted["ours"] <= 1.5, f"{weighted['ours']:.2f} pp"),
    ]
    return report_goals(goals, check=not args.no_check)


if __name__ == "__main__":
    raise SystemExit(main())
