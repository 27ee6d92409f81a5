"""What traces cost (issue 18, item 6): the same workflows with `[telemetry]` off and on.

(a) Per node: a chain of trivial sync nodes (add one to an int; cache "none", so every node runs and gets a span)
    and a chain of nodes that each work ~1 ms (a busy loop, as a node doing real work), run by an engine without
    `[telemetry]` and by one exporting to an OTLP/HTTP receiver on loopback (the tests' receiver, decoding every
    request). "on" is the run itself (spans are exported by a background thread); "on + export" adds the flush,
    so the export's CPU is counted too.
(b) Per model call: a workflow of one Chat node against the tests' scripted OpenAI-compatible server on loopback,
    off and on: the added milliseconds per call.
(c) Off means off: what a node pays when tracing is off, measured directly: an `is None` test for nodes run inline,
    entering a shared no-op context for nodes run in a worker thread or task.

Goals: tracing off costs < 1% of a trivial node (inline) and < 1% of the executor's own cost of a threaded node; a traced model call <= 1.05x an untraced one; nodes doing ~1 ms of
work <= 1.05x (the run's time; the export runs in a background thread, its CPU is shown beside). The trivial-node
ratio is reported without a goal: it is the price of an OpenTelemetry span against a node that costs microseconds.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from _support import Goal, parse_args, ratio, report_goals, show_table, timed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, when run as a script

from tests.support.openai_server import OpenAIServer  # noqa: E402

from partyflow.engine.engine import Engine  # noqa: E402

CHAIN = 500
BUSY_CHAIN = 100
BUSY_SECONDS = 0.001

PACK = '''
import time


class Inc:
    CATEGORY = "bench"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT", {})}}

    def run(self, x):
        return (x + 1,)


class Busy(Inc):
    def run(self, x):
        until = time.perf_counter() + SECONDS
        while time.perf_counter() < until:
            pass
        return (x + 1,)


class Out(Inc):
    OUTPUT_NODE = True


NODE_CLASS_MAPPINGS = {"Inc": Inc, "Busy": Busy, "Out": Out}
'''.replace("SECONDS", repr(BUSY_SECONDS))


RECEIVER = """
import sys
from tests.support.otlp_receiver import OTLPReceiver

with OTLPReceiver() as receiver:
    print(receiver.url, flush=True)
    sys.stdin.read()  # until the benchmark closes it
    print(len(receiver.spans), flush=True)
"""


@contextlib.contextmanager
def receiver_process() -> Iterator[tuple[str, list[int]]]:
    """The tests' OTLP/HTTP receiver in a process of its own, so decoding the exports does not take this
    process's CPU (or GIL) the way a collector on the same machine would not; yields its URL and, once it ended,
    the spans it received."""
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen([sys.executable, "-c", RECEIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, cwd=root, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                   [str(root), str(root / "src"), os.environ.get("PYTHONPATH", "")])})
    assert process.stdout is not None and process.stdin is not None
    received: list[int] = []
    try:
        yield process.stdout.readline().strip(), received
    finally:
        process.stdin.close()
        received.append(int(process.stdout.readline() or 0))
        process.wait(timeout=30)


@contextlib.contextmanager
def engine_on(telemetry: str | None, extra: str = "", *, builtin: bool = False) -> Iterator[Engine]:
    with tempfile.TemporaryDirectory(prefix="partyflow-bench-otel-") as tmp:
        pack = Path(tmp, "custom_nodes", "bench_nodes")
        pack.mkdir(parents=True)
        (pack / "__init__.py").write_text(textwrap.dedent(PACK))
        table = f'[telemetry]\notlp_endpoint = "{telemetry}"\n' if telemetry else ""
        # a parallel pack: trivial nodes learn to run inline, the executor's fastest path (where a hook shows most)
        Path(tmp, "config.toml").write_text(table + extra + "[packs.bench_nodes]\nparallel = true\n")
        options = {} if builtin else {"builtin_packs": ()}
        engine = Engine(home=tmp, cache="none", **options)
        try:
            yield engine
        finally:
            engine.close()


def chain(kind: str, length: int) -> dict[str, dict]:
    prompt = {"0": {"class_type": kind, "inputs": {"x": 0}}}
    for index in range(1, length):
        prompt[str(index)] = {"class_type": kind if index < length - 1 else "Out",
                              "inputs": {"x": [str(index - 1), 0]}}
    return prompt


def per_unit(off: Engine, on: Engine, prompt: dict, runs: int) -> dict[str, float]:
    """Median seconds per node of `prompt` on each engine: off, on, and on with the export flushed. Each sample is
    `batch` runs back to back, about one export batch of spans (512) as the exporter sends them, and the three are
    timed in turn within each round, so the machine's drift hits them alike."""
    tracing = on._services.tracing
    assert tracing is not None and off._services.tracing is None
    batch = min(20, max(1, 512 // (len(prompt) + 2)))

    def run(engine: Engine, flush: bool = False) -> None:
        for _ in range(batch):
            result = engine.run(prompt)
            assert result.ok, result.error
        if flush:
            tracing.flush()

    for _ in range(2):  # warm-up: validation remembered, fast node classes learned
        run(off), run(on, True)
    samples: dict[str, list[float]] = {"off": [], "on": [], "on + export": []}
    for _ in range(runs):
        samples["off"].append(timed(lambda: run(off))[0])
        samples["on"].append(timed(lambda: run(on))[0])
        tracing.flush()  # the previous round's spans are not exported during the next timing
        samples["on + export"].append(timed(lambda: run(on, True))[0])
    return {key: statistics.median(values) / len(prompt) / batch for key, values in samples.items()}


def disabled_hook_cost(repeats: int = 200_000, trials: int = 5) -> tuple[float, float]:
    """Seconds per node of what tracing being off costs: for an inline node, the executor's `is None` test; for a
    node in a worker thread or task, entering the shared no-op context. The best of a few trials (noise only adds),
    less the empty loop."""
    from partyflow.engine.executor import _NO_SPAN

    class Holder:
        _tracing = None

    holder = Holder()

    def best(body: Callable[[], None]) -> float:
        fastest = float("inf")
        for _ in range(trials):
            started = time.perf_counter()
            body()
            fastest = min(fastest, time.perf_counter() - started)
        return fastest / repeats

    def empty() -> None:
        for _ in range(repeats):
            pass

    def test() -> None:
        for _ in range(repeats):
            if holder._tracing is None:
                pass

    def context() -> None:
        for _ in range(repeats):
            with _NO_SPAN:
                pass

    base = best(empty)
    return max(best(test) - base, 0.0), max(best(context) - base, 0.0)


def main() -> int:
    args = parse_args(__doc__ or "", runs=9)
    rows, goals = [], []
    with receiver_process() as (receiver_url, received), OpenAIServer() as server:
        provider = (f'[providers.loop]\ntype = "openai_compat"\nbase_url = "{server.url}"\nmodel = "tiny-chat"\n'
                    "max_retries = 0\n")
        figures: dict[str, dict[str, float]] = {}
        for name, prompt in (("trivial", chain("Inc", CHAIN)), ("busy 1 ms", chain("Busy", BUSY_CHAIN))):
            with engine_on(None) as off, engine_on(receiver_url) as on:
                figures[name] = per_unit(off, on, prompt, args.runs)
        chat = {"model": {"class_type": "APIModelLoader", "inputs": {"provider": "loop", "model": ""}},
                "chat": {"class_type": "LLMChat", "inputs": {"model": ["model", 0], "system_prompt": "",
                                                             "user_prompt": "hello", "stream": False}},
                "show": {"class_type": "DisplayValue", "inputs": {"value": ["chat", 0]}}}
        with engine_on(None, provider, builtin=True) as off, engine_on(receiver_url, provider, builtin=True) as on:
            figures["chat call"] = {key: value * len(chat)
                                    for key, value in per_unit(off, on, chat, args.runs).items()}
    for name, figure in figures.items():
        unit = "ms/call" if name == "chat call" else "us/node"
        scale = 1e3 if name == "chat call" else 1e6
        rows.append((f"{name} ({unit})", f"{figure['off'] * scale:.2f}", f"{figure['on'] * scale:.2f}",
                     f"{figure['on + export'] * scale:.2f}", f"{ratio(figure['on'], figure['off']):.2f}x",
                     f"{ratio(figure['on + export'], figure['off']):.2f}x",
                     f"{(figure['on + export'] - figure['off']) * 1e6:+.1f} us"))
    show_table(f"Tracing off vs on ({received[0]} spans received over OTLP/HTTP by a receiver in another process)",
               ("workload", "off", "on", "on + export", "on/off", "(on + export)/off", "added per unit"), rows)
    inline, threaded = disabled_hook_cost()
    trivial = figures["trivial"]["off"]
    busy = figures["busy 1 ms"]
    hop = max(busy["off"] - BUSY_SECONDS, 1e-9)  # what the executor spends on a node it runs in a worker thread
    goals.append(Goal("tracing off, inline node", inline < 0.01 * trivial,
                      f"{inline * 1e9:.0f} ns = {inline / trivial:.2%} of a trivial node ({trivial * 1e6:.1f} us)"))
    goals.append(Goal("tracing off, node in a worker thread", threaded < 0.01 * hop,
                      f"{threaded * 1e9:.0f} ns = {threaded / hop:.2%} of the executor's own cost for such a node "
                      f"({hop * 1e6:.0f} us)"))
    goals.append(Goal("nodes doing ~1 ms of work, traced", busy["on"] <= 1.05 * busy["off"],
                      f"{ratio(busy['on'], busy['off']):.3f}x (goal <= 1.05x; with the export's CPU counted "
                      f"{ratio(busy['on + export'], busy['off']):.3f}x)"))
    call = figures["chat call"]
    goals.append(Goal("a model call, traced", call["on"] <= 1.05 * call["off"],
                      f"{ratio(call['on'], call['off']):.3f}x, {(call['on'] - call['off']) * 1e3:+.2f} ms (goal <= "
                      f"1.05x; with the export {ratio(call['on + export'], call['off']):.3f}x)"))
    return report_goals(goals, check=not args.no_check)


if __name__ == "__main__":
    raise SystemExit(main())
