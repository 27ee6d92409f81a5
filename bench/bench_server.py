"""Server throughput on trivial prompts: partyflow against a real ComfyUI 0.3.75, and against the engine's own queue.

The prompt is a constant node into an output node (`TextValue -> DisplayText` for partyflow, ComfyUI's
`PrimitiveString -> PreviewAny`), each with a distinct value so no cache answers. The client is the same for both
servers and runs in this process, each server in a process of its own on 127.0.0.1:

- **polling** (the throughput rows): each of N clients posts `/prompt`, then polls `/history/{prompt_id}` until
  the entry is there (first poll at once, then after 1, 2 and 4 ms, then every 4 ms), then posts its next prompt;
  prompts/s over the whole run. "C x P" means C clients sharing P prompts;
- **history**: the 32 x 1000 run timed twice on one server, fresh and then with 10,000 entries in history (put there
  by running prompts through it, untimed: partyflow's default `max_history` is 10,000, so every timed prompt also
  prunes); the ratio of the pair, so that the machine's changing load does not pass for an effect of the history;
- **WebSocket**: 32 clients, each connected to `/ws` with its client id, post and wait for their prompt's
  `execution_success`; p50/p99 from the POST's answer (accepted) to that message, and from sending the POST
  (partyflow answers a POST only once the prompt is synced to disk, so its prompt can finish before the answer);
- **engine queue** (always): the same prompt counts through `Engine.submit` and the engine's own queue worker in
  this process, no HTTP: what the server wraps.

ComfyUI comes from `bench/setup_comfyui.sh DIR` (its own throwaway venv); pass `--comfyui DIR` or set
PARTYFLOW_BENCH_COMFYUI=DIR. Without it the ComfyUI columns say "not run" and the ComfyUI goals are skipped.
Each server starts on a fresh home (ComfyUI: a fresh --base-directory) for every row and runs 50 untimed prompts
before its timed run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from _support import Goal, console, ratio, report_goals, show_table
from partyflow.engine.engine import Engine
from partyflow.engine.events import Event, ExecutionError, ExecutionSuccess

Prompt = dict[str, dict[str, Any]]
PromptFactory = Callable[[str], Prompt]

POLL_DELAYS = (0.0, 0.001, 0.002, 0.004)  # then POLL_DELAYS[-1] until the entry is there
HISTORY_PREFILL = 10_000
WARM_UP = 50  # untimed prompts on every fresh server before its timed run
GOAL_HISTORY_RATIO = 0.9  # prompts/s with 10,000 entries in history / fresh
START_TIMEOUT = 120.0


def partyflow_prompt(tag: str) -> Prompt:
    return {"1": {"class_type": "TextValue", "inputs": {"value": f"value {tag}"}},
            "2": {"class_type": "DisplayText", "inputs": {"text": ["1", 0]}}}


def comfyui_prompt(tag: str) -> Prompt:
    return {"1": {"class_type": "PrimitiveString", "inputs": {"value": f"value {tag}"}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}


# ---- servers ---------------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    prompt: PromptFactory


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def partyflow_server(home: Path) -> Iterator[Server]:
    """`partyflow serve` on a free port, as users run it."""
    process = subprocess.Popen([sys.executable, "-m", "partyflow", "serve", "--home", str(home), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("partyflow listening on "):
                url = line.removeprefix("partyflow listening on ").strip()
                break
        else:
            raise RuntimeError(f"partyflow serve exited with {process.wait()} before listening")
        yield Server("partyflow", url, partyflow_prompt)
    finally:
        _stop(process)


@contextmanager
def comfyui_server(root: Path, base: Path) -> Iterator[Server]:
    """ComfyUI's main.py from `bench/setup_comfyui.sh`'s folder, on CPU, with `base` as its base directory."""
    port = _free_port()
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(root / "stubs")}
    process = subprocess.Popen(
        [str(root / "venv" / "bin" / "python"), "main.py", "--cpu", "--disable-auto-launch", "--listen", "127.0.0.1",
         "--port", str(port), "--base-directory", str(base)],
        cwd=root / "ComfyUI", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(_wait_until_up(url, process))
        yield Server("ComfyUI", url, comfyui_prompt)
    finally:
        _stop(process)


async def _wait_until_up(url: str, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {process.returncode} while starting")
            try:
                async with session.get(f"{url}/prompt") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"ComfyUI did not answer on {url} within {START_TIMEOUT:.0f}s")


# ---- clients ---------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    prompts: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    from_post: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.prompts / self.seconds


class Tags:
    """Distinct values for every prompt of the whole benchmark, so no run hits a cache."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._run = uuid.uuid4().hex[:8]

    def __call__(self) -> str:
        return f"{self._run}-{next(self._counter)}"


async def _post(session: aiohttp.ClientSession, server: Server, tags: Tags, client_id: str) -> str:
    body = {"prompt": server.prompt(tags()), "client_id": client_id}
    async with session.post(f"{server.url}/prompt", json=body) as answer:
        if answer.status != 200:
            raise RuntimeError(f"{server.name} POST /prompt: {answer.status} {await answer.text()}")
        return (await answer.json())["prompt_id"]


async def polling_run(server: Server, tags: Tags, clients: int, prompts: int) -> RunResult:
    """`clients` clients share `prompts` prompts; each posts one, polls its history entry, then posts the next."""
    todo = iter(range(prompts))

    async def client(session: aiohttp.ClientSession) -> None:
        client_id = uuid.uuid4().hex
        for _ in todo:
            prompt_id = await _post(session, server, tags, client_id)
            for attempt in itertools.count():
                await asyncio.sleep(POLL_DELAYS[min(attempt, len(POLL_DELAYS) - 1)])
                async with session.get(f"{server.url}/history/{prompt_id}") as answer:
                    entry = (await answer.json()).get(prompt_id)
                if entry is not None:
                    if entry["status"]["status_str"] != "success":
                        raise RuntimeError(f"{server.name}: prompt {prompt_id} failed: {entry['status']}")
                    break

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return RunResult(prompts, time.perf_counter() - started)


async def websocket_run(server: Server, tags: Tags, clients: int, prompts: int) -> RunResult:
    """Each client waits on its own WebSocket for its prompt's `execution_success`; latency from the POST's answer."""
    todo = iter(range(prompts))
    latencies: list[float] = []  # from the POST's answer (accepted)
    from_post: list[float] = []  # from sending the POST
    ws_url = server.url.replace("http://", "ws://", 1)

    async def client(session: aiohttp.ClientSession) -> None:
        client_id = uuid.uuid4().hex
        async with session.ws_connect(f"{ws_url}/ws?clientId={client_id}", max_msg_size=0) as ws:
            for _ in todo:
                posted = time.perf_counter()
                prompt_id = await _post(session, server, tags, client_id)
                accepted = time.perf_counter()
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        continue
                    frame = json.loads(message.data)
                    data = frame.get("data") or {}
                    if data.get("prompt_id") != prompt_id:
                        continue
                    if frame["type"] == "execution_success":
                        # a message that arrived before the POST's answer was read counts as received then
                        received = time.perf_counter()
                        latencies.append(received - accepted)
                        from_post.append(received - posted)
                        break
                    if frame["type"] == "execution_error":
                        raise RuntimeError(f"{server.name}: prompt failed: {data.get('exception_message')}")
                else:
                    raise RuntimeError(f"{server.name}: WebSocket closed while waiting for {prompt_id}")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients * 2)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return RunResult(prompts, time.perf_counter() - started, latencies, from_post)


async def engine_queue_run(engine: Engine, tags: Tags, clients: int, prompts: int) -> RunResult:
    """The engine's own persistent queue, no HTTP: each client submits, waits for its prompt to finish, repeats."""
    todo = iter(range(prompts))
    waiting: dict[str, asyncio.Future[bool]] = {}

    def on_event(event: Event) -> None:
        if isinstance(event, (ExecutionSuccess, ExecutionError)) and event.prompt_id in waiting:
            future = waiting.pop(event.prompt_id)
            if not future.done():
                future.set_result(isinstance(event, ExecutionSuccess))

    async def client() -> None:
        for _ in todo:
            prompt_id = uuid.uuid4().hex
            done = waiting[prompt_id] = asyncio.get_running_loop().create_future()
            await engine.submit_async(partyflow_prompt(tags()), prompt_id=prompt_id)
            if not await done:
                raise RuntimeError(f"engine queue: prompt {prompt_id} failed")

    stop = asyncio.Event()
    unsubscribe = engine.subscribe(on_event)
    worker = asyncio.create_task(engine.serve_queue(stop))
    try:
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return RunResult(prompts, time.perf_counter() - started)
    finally:
        stop.set()
        await worker
        unsubscribe()


# ---- the benchmark ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    label: str
    clients: int
    prompts: int
    prefill: int = 0


def measure_server(start: Callable[[Path], Any], scenario: Scenario, tags: Tags) -> tuple[float, float]:
    """Prompts/s of one polling run on a server started fresh. With a prefill, the same run is timed twice on the
    same server, fresh and then after `prefill` prompts (untimed): the pair is measured minutes apart, not a run
    apart, so the ratio is about the history and not about the machine's load. Returns (rate, fresh rate)."""
    with tempfile.TemporaryDirectory(prefix="partyflow-bench-server-") as tmp, start(Path(tmp)) as server:
        asyncio.run(polling_run(server, tags, scenario.clients, WARM_UP))  # first requests, imports, connections
        fresh = asyncio.run(polling_run(server, tags, scenario.clients, scenario.prompts)).rate
        if not scenario.prefill:
            return fresh, fresh
        asyncio.run(polling_run(server, tags, 32, scenario.prefill - scenario.prompts - WARM_UP))
        return asyncio.run(polling_run(server, tags, scenario.clients, scenario.prompts)).rate, fresh


def measure_websocket(start: Callable[[Path], Any], clients: int, prompts: int, tags: Tags) -> RunResult:
    with tempfile.TemporaryDirectory(prefix="partyflow-bench-server-") as tmp, start(Path(tmp)) as server:
        asyncio.run(polling_run(server, tags, clients, WARM_UP))
        return asyncio.run(websocket_run(server, tags, clients, prompts))


def measure_engine(scenario: Scenario, tags: Tags, runs: int) -> float:
    rates = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="partyflow-bench-engine-") as tmp:
            engine = Engine(home=tmp, load_custom_nodes=False)
            try:
                engine.run(partyflow_prompt("warm-up"))
                rates.append(asyncio.run(engine_queue_run(engine, tags, scenario.clients, scenario.prompts)).rate)
            finally:
                engine.close()
    return statistics.median(rates)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="runs per row, median taken (default 1)")
    parser.add_argument("--no-check", action="store_true", help="only print; exit 0 even if a goal is missed")
    parser.add_argument("--comfyui", default=os.environ.get("PARTYFLOW_BENCH_COMFYUI"),
                        help="folder made by bench/setup_comfyui.sh (default: $PARTYFLOW_BENCH_COMFYUI)")
    parser.add_argument("--only", default="1,16,32,history,ws",
                        help="comma-separated parts to run: 1, 16, 32, history, ws (default: all)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every prompt count (quick looks: 0.2)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    comfyui_root = Path(args.comfyui) if args.comfyui else None
    if comfyui_root is not None and not (comfyui_root / "ComfyUI" / "main.py").is_file():
        console.print(f"[red]--comfyui {comfyui_root}: no ComfyUI/main.py there (run bench/setup_comfyui.sh)[/]")
        return 2

    def scaled(count: int) -> int:
        return max(1, round(count * args.scale))

    only = set(args.only.split(","))
    scenarios = [scenario for key, scenario in (
        ("1", Scenario("1 x 200", 1, scaled(200))), ("16", Scenario("16 x 300", 16, scaled(300))),
        ("32", Scenario("32 x 1000", 32, scaled(1000))),
        ("history", Scenario(f"32 x 1000, {scaled(HISTORY_PREFILL):,} in history", 32, scaled(1000),
                             scaled(HISTORY_PREFILL)))) if key in only]
    tags = Tags()
    starters: dict[str, Callable[[Path], Any]] = {"partyflow": lambda tmp: partyflow_server(tmp / "home")}
    if comfyui_root is not None:
        starters["ComfyUI"] = lambda tmp: comfyui_server(comfyui_root, tmp / "comfyui")

    rates: dict[tuple[str, str], float] = {}
    history_ratios: dict[str, float] = {}
    for scenario in scenarios:
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in starters}
        for _ in range(args.runs):
            for name, start in starters.items():  # alternating, so both see the same machine load
                samples[name].append(measure_server(start, scenario, tags))
                rate, fresh = samples[name][-1]
                extra = f" (same server fresh: {fresh:,.0f})" if scenario.prefill else ""
                console.print(f"{name:>9} {scenario.label}: {rate:,.0f} prompts/s{extra}")
        for name, values in samples.items():
            rates[name, scenario.label] = statistics.median(rate for rate, _ in values)
            if scenario.prefill:
                history_ratios[name] = statistics.median(rate / fresh for rate, fresh in values)
        rates["engine", scenario.label] = measure_engine(scenario, tags, args.runs) if not scenario.prefill \
            else float("nan")
    ws = {name: measure_websocket(start, 32, scaled(1000), tags) for name, start in starters.items()} \
        if "ws" in only else {}

    def cell(name: str, label: str) -> str:
        value = rates.get((name, label))
        return "not run" if value is None or value != value else f"{value:,.0f}"

    rows = []
    for scenario in scenarios:
        ours, theirs = rates["partyflow", scenario.label], rates.get(("ComfyUI", scenario.label))
        rows.append([scenario.label, cell("ComfyUI", scenario.label), cell("partyflow", scenario.label),
                     f"{ratio(ours, theirs):.2f}x" if theirs else "-", cell("engine", scenario.label)])
    if rows:
        show_table("Prompts/s, trivial prompt (constant -> output node), clients poll /history/{id}; "
                   "server in its own process",
                   ["clients x prompts", "ComfyUI 0.3.75", "partyflow", "partyflow / ComfyUI",
                    "engine queue (no HTTP)"], rows)
    if history_ratios:
        show_table(f"32 x {scaled(1000)} after {scaled(HISTORY_PREFILL):,} prompts / the same run on the same "
                   "server when fresh (median of runs)", ["server", "ratio"],
                   [[name, f"{value:.2f}x"] for name, value in history_ratios.items()])
    if ws:
        show_table(f"32 clients x {scaled(1000)} prompts on the WebSocket: -> execution_success",
                   ["server", "prompts/s", "from accepted (POST answered) p50 / p99 ms",
                    "from POST sent p50 / p99 ms"],
                   [[name, f"{result.rate:,.0f}",
                     f"{percentile(result.latencies, 0.5) * 1000:.1f} / {percentile(result.latencies, 0.99) * 1000:.1f}",
                     f"{percentile(result.from_post, 0.5) * 1000:.1f} / {percentile(result.from_post, 0.99) * 1000:.1f}"]
                    for name, result in ws.items()])

    goals = []
    if "ComfyUI" in starters:
        for scenario in scenarios:
            if scenario.prefill:
                continue
            ours, theirs = rates["partyflow", scenario.label], rates["ComfyUI", scenario.label]
            goals.append(Goal(f"throughput {scenario.label}", ours >= theirs,
                              f"{ours:,.0f} vs ComfyUI {theirs:,.0f} prompts/s = {ratio(ours, theirs):.2f}x "
                              "(goal >= 1x)"))
    else:
        console.print("ComfyUI not run: set PARTYFLOW_BENCH_COMFYUI or pass --comfyui (see bench/setup_comfyui.sh)")
    if "partyflow" in history_ratios:
        value = history_ratios["partyflow"]
        goals.append(Goal("history-size independence", value >= GOAL_HISTORY_RATIO,
                          f"32 x {scaled(1000)} with {scaled(HISTORY_PREFILL):,} entries in history = {value:.2f}x "
                          f"the same server fresh (goal >= {GOAL_HISTORY_RATIO})"))
    if "partyflow" in ws:
        result = ws["partyflow"]
        goals.append(Goal("WebSocket p99 reported", True,
                          f"partyflow p99 accepted -> execution_success {percentile(result.latencies, 0.99) * 1000:.1f}"
                          f" ms, POST sent -> execution_success {percentile(result.from_post, 0.99) * 1000:.1f} ms"))
    return report_goals(goals, check=not args.no_check)


if __name__ == "__main__":
    sys.exit(main())
