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
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future

import aiohttp
from _support import Goal, Prompt, parse_args, ratio, report_goals, show_table
from aiohttp import web

from partyflow.engine.engine import Engine
from partyflow.engine.events import Event, Executed
from partyflow.server.app import create_app
from partyflow.server.config import ServerConfig

CLIENTS = 50
PROMPTS_PER_CLIENT = 4
ACCEPT_PROMPTS = 1_000
NODES = 10
GOAL_E2E_OVERHEAD = 2.0  # server end-to-end time per prompt / engine's, one prompt at a time (both serial)
GOAL_WS_P99_MS = 50.0


def text_workflow(tag: str) -> Prompt:
    """A string, eight concatenations and a Show Text: ten nodes, one output."""
    prompt: Prompt = {"1": {"class_type": "PrimitiveString", "inputs": {"value": f"run {tag}"}}}
    for index in range(2, NODES):
        prompt[str(index)] = {"class_type": "TextConcatenate",
                              "inputs": {"text_a": [str(index - 1), 0], "text_b": f"step {index}", "separator": " "}}
    prompt[str(NODES)] = {"class_type": "DisplayText", "inputs": {"text": [str(NODES - 1), 0]}}
    return prompt


class ServerThread:
    """The app on its own event loop in a thread, like a separate server process but sharing clocks."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = 0

    def _call(self, make: Callable[[], Awaitable[None]]) -> None:
        future: Future[None] = asyncio.run_coroutine_threadsafe(make(), self.loop)  # type: ignore[arg-type]
        future.result(timeout=60)

    async def _start(self) -> None:
        self.runner = web.AppRunner(create_app(self.engine, ServerConfig(port=0)), handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]

    async def _stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def __enter__(self) -> ServerThread:
        self.thread.start()
        self._call(self._start)
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


class NodeEndClock:
    """When the engine emitted each prompt's output-node `executed` event (perf_counter, shared by both threads)."""

    def __init__(self) -> None:
        self.ended: dict[str, float] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, Executed) and event.node == str(NODES):
            self.ended[event.prompt_id] = time.perf_counter()


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


async def end_to_end(url: str, counter: itertools.count, clock: NodeEndClock) -> tuple[float, list[float]]:
    """Prompts/s with each client waiting for its prompt's finish on its WebSocket; and node-end latencies (s)."""
    latencies: list[float] = []

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
                    received = time.perf_counter()
                    frame = json.loads(message.data)
                    data = frame.get("data") or {}
                    if data.get("prompt_id") != prompt_id:
                        continue
                    if frame["type"] == "executed" and data.get("node") == str(NODES):
                        latencies.append(received - clock.ended[prompt_id])
                    if frame["type"] == "executing" and data.get("node") is None:
                        break
                    if frame["type"] == "execution_error":
                        raise RuntimeError(f"prompt failed: {data.get('exception_message')}")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS * 2)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - started
    return CLIENTS * PROMPTS_PER_CLIENT / elapsed, latencies


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


async def engine_rates(engine: Engine, counter: itertools.count) -> tuple[float, float]:
    """(concurrent prompts/s with 50 callers of run_async, serial prompts/s one prompt at a time)."""
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
    return concurrent, serial


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], runs=1)
    counter = itertools.count()
    with tempfile.TemporaryDirectory(prefix="partyflow-bench-server-") as home:
        engine = Engine(home=home, load_custom_nodes=False)
        try:
            asyncio.run(engine.run_async(text_workflow("warm-up")))
            clock = NodeEndClock()
            engine.subscribe(clock)
            with ServerThread(engine) as server:
                url = f"http://127.0.0.1:{server.port}"

                async def over_http() -> tuple[float, float, list[float]]:
                    accepted = await accept_rate(url, counter)
                    await wait_idle(url)
                    e2e, latencies = await end_to_end(url, counter, clock)
                    return accepted, e2e, latencies

                accepted, e2e, latencies = asyncio.run(over_http())
        finally:
            engine.close()
        with tempfile.TemporaryDirectory(prefix="partyflow-bench-engine-") as direct_home:
            direct = Engine(home=direct_home, load_custom_nodes=False)
            try:
                submit_rate = asyncio.run(engine_submit_rate(direct, counter))
                concurrent, serial = asyncio.run(engine_rates(direct, counter))
            finally:
                direct.close()

    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    show_table(
        f"Server vs engine: {NODES}-node text workflow, {CLIENTS} concurrent clients, 127.0.0.1",
        ["measure", "server (HTTP + WebSocket)", "engine directly", "server / engine"],
        [
            ["prompts accepted/s (POST /prompt vs Engine.submit)", f"{accepted:,.0f}", f"{submit_rate:,.0f}",
             f"{ratio(accepted, submit_rate):.2f}x"],
            ["end-to-end prompts/s (queue: one at a time)", f"{e2e:,.0f}", f"{serial:,.0f}",
             f"{ratio(e2e, serial):.2f}x"],
            ["end-to-end prompts/s (engine: 50 concurrent run_async)", f"{e2e:,.0f}", f"{concurrent:,.0f}",
             f"{ratio(e2e, concurrent):.2f}x"],
            ["WebSocket node end -> client p50 / p99 (ms)", f"{p50:.2f} / {p99:.2f}", "-", "-"],
        ],
    )
    overhead = ratio(serial, e2e)
    goals = [
        Goal("end-to-end overhead", overhead <= GOAL_E2E_OVERHEAD,
             f"server takes {overhead:.2f}x the engine's time per prompt (goal <= {GOAL_E2E_OVERHEAD}x)"),
        Goal("WebSocket latency", p99 <= GOAL_WS_P99_MS, f"p99 {p99:.2f} ms (goal <= {GOAL_WS_P99_MS:.0f} ms)"),
    ]
    return report_goals(goals, check=not args.no_check)


if __name__ == "__main__":
    sys.exit(main())
