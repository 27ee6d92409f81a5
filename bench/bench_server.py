"""Server overhead: the HTTP/WebSocket server against the engine it wraps, on a 10-node text workflow.

Measured with 50 concurrent clients on 127.0.0.1 (aiohttp clients on this process's main loop; the server on
its own loop in a thread, as `partyflow serve` runs it):

- accepted/s: POST /prompt answers per second (validation + durable enqueue + HTTP), against `Engine.submit`
  called directly by 50 concurrent tasks;
- end-to-end prompts/s: each client posts a prompt over HTTP and waits on its WebSocket for the prompt's
  finish, then posts the next; against the same 50 clients calling `Engine.run_async` directly, and against
  the engine running the prompts one at a time as the queue does (the fair peer: the server's queue is serial);
- WebSocket latency: from the engine emitting the output node's `executed` event (node end) to the client
  receiving it, p50 and p99.

Every prompt differs (its first text carries a counter) so the output cache never answers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from aiohttp import web

from _support import Goal, Prompt, parse_args, ratio, report_goals, show_table
from partyflow.engine.engine import Engine
from partyflow.engine.events import Event, Executed
from partyflow.server.app import create_app
from partyflow.server.config import ServerConfig

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "50"))
PROMPTS_PER_CLIENT = 4
ACCEPT_PROMPTS = 1_000
NODES = 10
GOAL_E2E_OVERHEAD = 2.0  # server end-to-end time per prompt / engine's, one prompt at a time (both serial)
GOAL_WS_P99_MS = 50.0
CHILD_FLAG = "--serve-child"


def text_workflow(tag: str) -> Prompt:
    """A string, eight concatenations and a Show Text: ten nodes, one output."""
    prompt: Prompt = {"1": {"class_type": "TextValue", "inputs": {"value": f"run {tag}"}}}
    for index in range(2, NODES):
        prompt[str(index)] = {"class_type": "TextConcatenate",
                              "inputs": {"text_a": [str(index - 1), 0], "text_b": f"step {index}", "separator": " "}}
    prompt[str(NODES)] = {"class_type": "DisplayText", "inputs": {"text": [str(NODES - 1), 0]}}
    return prompt


class NodeEndClock:
    """When the engine emitted each prompt's output-node `executed` event (CLOCK_MONOTONIC: same in every process)."""

    def __init__(self) -> None:
        self.ended: dict[str, float] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, Executed) and event.node == str(NODES):
            self.ended[event.prompt_id] = time.monotonic()

    def extension(self, app: web.Application) -> None:
        """GET /bench/node-ends: the recorded times, for the benchmark's clients in the other process."""
        async def ends(request: web.Request) -> web.Response:
            return web.json_response(self.ended)
        app.router.add_get("/bench/node-ends", ends)


async def child_server(home: str) -> None:
    """The server process: `partyflow serve`'s app plus the clock route; prints its port, stops when stdin closes."""
    engine = Engine(home=home, load_custom_nodes=False)
    await engine.run_async(text_workflow("warm-up"))
    clock = NodeEndClock()
    engine.subscribe(clock)
    runner = web.AppRunner(create_app(engine, ServerConfig(port=0), extensions=[clock.extension]),
                           handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()
    engine.close()


@contextmanager
def server_process(home: str) -> Iterator[str]:
    """The server in its own process (as `partyflow serve` runs), so clients and server do not share a GIL."""
    child = subprocess.Popen([sys.executable, __file__, CHILD_FLAG, home], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        port = child.stdout.readline().strip() if child.stdout else ""
        if not port:
            raise RuntimeError("the server process did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        if child.stdin:
            child.stdin.close()
        child.wait(timeout=30)


async def accept_rate(url: str, counter: itertools.count) -> float:
    """POST /prompt answers per second, CLIENTS posting concurrently until ACCEPT_PROMPTS are in."""
    remaining = iter(range(ACCEPT_PROMPTS))

    async def client(session: aiohttp.ClientSession) -> None:
        for _ in remaining:
            async with session.post(f"{url}/prompt", json={"prompt": text_workflow(str(next(counter)))}) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"POST /prompt: {answer.status} {await answer.text()}")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
        return ACCEPT_PROMPTS / (time.perf_counter() - started)


async def wait_idle(url: str) -> None:
    """Until the accept test's backlog has run, so it does not slow the next measurement."""
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{url}/prompt") as answer:
                if (await answer.json())["exec_info"]["queue_remaining"] == 0:
                    return
            await asyncio.sleep(0.05)


async def end_to_end(url: str, counter: itertools.count) -> tuple[float, list[float]]:
    """Prompts/s with each client waiting for its prompt's finish on its WebSocket; and node-end latencies (s)."""
    received_at: dict[str, float] = {}

    async def client(session: aiohttp.ClientSession) -> None:
        client_id = uuid.uuid4().hex
        async with session.ws_connect(f"{url}/ws?clientId={client_id}") as ws:
            for _ in range(PROMPTS_PER_CLIENT):
                body = {"prompt": text_workflow(str(next(counter))), "client_id": client_id}
                async with session.post(f"{url}/prompt", json=body) as answer:
                    prompt_id = (await answer.json())["prompt_id"]
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        continue
                    received = time.monotonic()
                    frame = json.loads(message.data)
                    data = frame.get("data") or {}
                    if data.get("prompt_id") != prompt_id:
                        continue
                    if frame["type"] == "executed" and data.get("node") == str(NODES):
                        received_at[prompt_id] = received
                    if frame["type"] == "executing" and data.get("node") is None:
                        break
                    if frame["type"] == "execution_error":
                        raise RuntimeError(f"prompt failed: {data.get('exception_message')}")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS * 2)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - started
        async with session.get(f"{url}/bench/node-ends") as answer:
            ended = await answer.json()
    return CLIENTS * PROMPTS_PER_CLIENT / elapsed, [at - ended[pid] for pid, at in received_at.items()]


async def engine_submit_rate(engine: Engine, counter: itertools.count) -> float:
    remaining = iter(range(ACCEPT_PROMPTS))

    async def client() -> None:
        for _ in remaining:
            engine.submit(text_workflow(str(next(counter))))
            await asyncio.sleep(0)  # let the other clients interleave, as requests would

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    rate = ACCEPT_PROMPTS / (time.perf_counter() - started)
    engine.queue.clear()
    return rate


async def engine_rates(engine: Engine, counter: itertools.count) -> tuple[float, float, float]:
    """Prompts/s: 50 concurrent callers of run_async; run_async one prompt at a time; and through the engine's
    persistent queue (submit, then the queue runs them one at a time: the server's path without HTTP/WS)."""
    async def client() -> None:
        for _ in range(PROMPTS_PER_CLIENT):
            result = await engine.run_async(text_workflow(str(next(counter))))
            if not result.ok:
                raise RuntimeError(str(result.error))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    concurrent = CLIENTS * PROMPTS_PER_CLIENT / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(CLIENTS * PROMPTS_PER_CLIENT):
        await engine.run_async(text_workflow(str(next(counter))))
    serial = CLIENTS * PROMPTS_PER_CLIENT / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(CLIENTS * PROMPTS_PER_CLIENT):
        engine.submit(text_workflow(str(next(counter))))
        await engine.drain()
    queued = CLIENTS * PROMPTS_PER_CLIENT / (time.perf_counter() - started)
    return concurrent, serial, queued


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        asyncio.run(child_server(sys.argv[2]))
        return 0
    args = parse_args(__doc__.splitlines()[0], runs=1)
    counter = itertools.count()
    with tempfile.TemporaryDirectory(prefix="partyflow-bench-server-") as home, server_process(home) as url:
        async def over_http() -> tuple[float, float, list[float]]:
            accepted = await accept_rate(url, counter)
            await wait_idle(url)
            e2e, latencies = await end_to_end(url, counter)
            return accepted, e2e, latencies

        accepted, e2e, latencies = asyncio.run(over_http())
    with tempfile.TemporaryDirectory(prefix="partyflow-bench-engine-") as direct_home:
        direct = Engine(home=direct_home, load_custom_nodes=False)
        try:
            submit_rate = asyncio.run(engine_submit_rate(direct, counter))
            concurrent, serial, queued = asyncio.run(engine_rates(direct, counter))
        finally:
            direct.close()

    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    show_table(
        f"Server vs engine: {NODES}-node text workflow, {CLIENTS} concurrent clients, server in its own process",
        ["measure", "server (HTTP + WebSocket)", "engine directly", "server / engine"],
        [
            ["prompts accepted/s (POST /prompt vs Engine.submit)", f"{accepted:,.0f}", f"{submit_rate:,.0f}",
             f"{ratio(accepted, submit_rate):.2f}x"],
            ["end-to-end prompts/s vs engine queue (submit + run)", f"{e2e:,.0f}", f"{queued:,.0f}",
             f"{ratio(e2e, queued):.2f}x"],
            ["end-to-end prompts/s vs run_async, one at a time", f"{e2e:,.0f}", f"{serial:,.0f}",
             f"{ratio(e2e, serial):.2f}x"],
            ["end-to-end prompts/s vs run_async, 50 concurrent", f"{e2e:,.0f}", f"{concurrent:,.0f}",
             f"{ratio(e2e, concurrent):.2f}x"],
            ["WebSocket node end -> client p50 / p99 (ms)", f"{p50:.2f} / {p99:.2f}", "-", "-"],
        ],
    )
    overhead = ratio(queued, e2e)
    goals = [
        Goal("end-to-end overhead", overhead <= GOAL_E2E_OVERHEAD,
             f"the server takes {overhead:.2f}x the time per prompt of the engine's own queue "
             f"(goal <= {GOAL_E2E_OVERHEAD}x)"),
        Goal("WebSocket latency", p99 <= GOAL_WS_P99_MS, f"p99 {p99:.2f} ms (goal <= {GOAL_WS_P99_MS:.0f} ms)"),
    ]
    return report_goals(goals, check=not args.no_check)


if __name__ == "__main__":
    sys.exit(main())
