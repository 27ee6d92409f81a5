"""LLM access: our openai_compat provider against the raw `openai` client, and 32 concurrent Chat nodes.

(a) Overhead: the same loopback OpenAI-compatible server answers both the raw `openai` client and our provider
    (which wraps that client with request building, retries, error mapping and response assembly). Calls
    alternate between the two so drift hits both alike; the table shows the median per call, the median added
    latency and the ratio (goal < 1.05x), for plain and streamed calls.
(b) Concurrency: one workflow with 32 Chat nodes against a server that takes 300 ms per answer, against the
    same workflow with one Chat node (goal: wall time < 1.5x one call).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai

from _support import Goal, parse_args, ratio, report_goals, show_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, when run as a script

from tests.support import openai_server  # noqa: E402
from tests.support.openai_server import OpenAIServer, Reply, text_stream  # noqa: E402

from partyflow.engine.engine import Engine  # noqa: E402
from partyflow.llm import ChatRequest, ProviderConfig, UserMessage  # noqa: E402
from partyflow.llm.providers.openai_compat import OpenAICompatProvider  # noqa: E402

OVERHEAD_GOAL = 1.05
CONCURRENCY_GOAL = 1.5
WIDTH = 32
ANSWER_S = 0.3
PROMPT = "Say hello in five words."


def alternate(raw: Callable[[], Any], ours: Callable[[], Any], calls: int) -> tuple[float, float]:
    """Median seconds per call of each, measured in alternation after a warm-up of each."""
    for _ in range(20):
        raw()
        ours()
    raw_times, our_times = [], []
    for _ in range(calls):
        for action, times in ((raw, raw_times), (ours, our_times)):
            started = time.perf_counter()
            action()
            times.append(time.perf_counter() - started)
    return statistics.median(raw_times), statistics.median(our_times)


def overhead_rows(server: OpenAIServer, calls: int) -> tuple[list[list[str]], list[Goal]]:
    client = openai.OpenAI(base_url=server.url, api_key="sk-bench", max_retries=0)
    provider = OpenAICompatProvider(ProviderConfig(name="bench", type="openai_compat", base_url=server.url,
                                                   model="tiny-chat", max_retries=0))
    messages = [{"role": "user", "content": PROMPT}]
    request = ChatRequest(messages=(UserMessage(content=PROMPT),))

    def raw_plain() -> Any:
        return client.chat.completions.create(model="tiny-chat", messages=messages).choices[0].message.content

    def raw_stream() -> Any:
        stream = client.chat.completions.create(model="tiny-chat", messages=messages, stream=True,
                                                stream_options={"include_usage": True})
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    def our_stream() -> Any:
        return [piece for piece in provider.stream(request)][-1].response.text

    rows, goals = [], []
    for label, raw, ours in (("plain", raw_plain, lambda: provider.chat(request).text),
                             ("streaming", raw_stream, our_stream)):
        if raw() != ours():
            raise AssertionError(f"{label}: the raw client and our provider disagree")
        raw_s, our_s = alternate(raw, ours, calls)
        measured = ratio(our_s, raw_s)
        rows.append([label, f"{raw_s * 1e3:.3f}", f"{our_s * 1e3:.3f}", f"{(our_s - raw_s) * 1e6:+.0f}",
                     f"{measured:.3f}x"])
        goals.append(Goal(f"openai_compat overhead, {label}", measured < OVERHEAD_GOAL,
                          f"{measured:.3f}x the raw client (goal < {OVERHEAD_GOAL}x)"))
    provider.close()
    client.close()
    return rows, goals


def chat_workflow(width: int) -> dict[str, Any]:
    prompt: dict[str, Any] = {"model": {"class_type": "APIModelLoader", "inputs": {"provider": "slow", "model": ""}}}
    for i in range(width):
        prompt[f"chat{i}"] = {"class_type": "LLMChat", "inputs": {
            "model": ["model", 0], "system_prompt": "", "user_prompt": f"question {i}"}}
        prompt[f"show{i}"] = {"class_type": "DisplayText", "inputs": {"text": [f"chat{i}", 0]}}
    return prompt


def timed_run(engine: Engine, server: OpenAIServer, width: int) -> float:
    """One run of `width` Chat nodes, each answer held back ANSWER_S seconds by the server."""
    server.reset()
    server.script(*[Reply.slow(ANSWER_S, Reply.stream(text_stream(["hello ", "there"]))) for _ in range(width)])
    started = time.perf_counter()
    result = engine.run(chat_workflow(width))
    seconds = time.perf_counter() - started
    if not result.ok or len(server.requests) != width:
        raise AssertionError(f"run of {width} chats: {result.error}, {len(server.requests)} requests")
    return seconds


def concurrency_rows(server: OpenAIServer, runs: int) -> tuple[list[list[str]], list[Goal]]:
    with tempfile.TemporaryDirectory(prefix="partyflow-bench-llm-") as home:
        Path(home, "config.toml").write_text(f'[providers.slow]\ntype = "openai_compat"\nbase_url = "{server.url}"\n'
                                             'model = "tiny-chat"\nmax_retries = 0\n', encoding="utf-8")
        engine = Engine(home=home, cache="none", load_custom_nodes=False)
        try:
            timed_run(engine, server, 1)  # warm-up: imports, first client
            one = statistics.median(timed_run(engine, server, 1) for _ in range(runs))
            many = statistics.median(timed_run(engine, server, WIDTH) for _ in range(runs))
        finally:
            engine.close()
    measured = ratio(many, one)
    rows = [[f"{WIDTH} Chat nodes, {ANSWER_S * 1e3:.0f} ms answers", f"{one * 1e3:.0f}", f"{many * 1e3:.0f}",
             f"{measured:.2f}x", f"{WIDTH * one * 1e3:,.0f}"]]
    return rows, [Goal(f"{WIDTH} concurrent Chat nodes", measured < CONCURRENCY_GOAL,
                       f"{many * 1e3:.0f} ms = {measured:.2f}x one call (goal < {CONCURRENCY_GOAL}x)")]


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], runs=5)
    # The server writes headers and body separately; with Nagle's algorithm on, a client whose ACK is delayed
    # waits 40 ms for the body, which measures the kernel, not the clients. Loopback servers in production
    # (uvicorn, vLLM, Ollama) set TCP_NODELAY too.
    openai_server._Handler.disable_nagle_algorithm = True
    with OpenAIServer() as server:
        calls = max(50, args.runs * 60)
        overhead, goals = overhead_rows(server, calls)
        show_table(f"openai_compat provider vs raw openai client, loopback server (median of {calls} calls each)",
                   ["call", "raw client ms", "our provider ms", "added us", "ratio"], overhead)
        concurrency, more = concurrency_rows(server, args.runs)
        show_table(f"Concurrent Chat nodes in one workflow (median of {args.runs} runs)",
                   ["workflow", "1 chat ms", f"{WIDTH} chats ms", f"{WIDTH} / 1", "sequential bound ms"],
                   concurrency)
    return report_goals([*goals, *more], check=not args.no_check)


if __name__ == "__main__":
    sys.exit(main())
