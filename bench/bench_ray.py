"""Ray backend: throughput of I/O-bound prompts on 1, 2 and 4 workers vs the local backend, the latency a trivial
prompt gains through Ray, and Ray-native code doing the same waits.

Each prompt is 8 independent nodes waiting 200 ms (time.sleep in a worker thread) joined by one node, so a prompt
takes about 200 ms wherever it runs. The local backend runs queued prompts one at a time (the server's queue
semantics), so N workers should bring close to N times its throughput on I/O-bound work, even on 2 cores. Every
path goes through the same `Dispatcher` the server uses: claim from the durable queue, run, record history. The
Ray-native peer is a pool of N async actors, each running a prompt's 8 waits in threads and joining them, fed by
the driver with at most N prompts in flight. The cluster is private, on 127.0.0.1, started and stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _support import Goal, console, report_goals, show_table
from partyflow.distributed import BackendSettings, LocalBackend
from partyflow.distributed.dispatch import Dispatcher
from partyflow.distributed.ray_backend import RayBackend
from partyflow.engine.engine import Engine

WAITS = 8
WAIT_S = 0.2
LATENCY_GOAL_MS = 20.0
NATIVE_GOAL = 1.2
LINEAR_SHARE = 0.8  # "near-linear": N workers reach at least 80% of N times the local throughput

PACK = f'''
import time


class Wait:
    CATEGORY = "bench"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{"index": ("INT", {{}}), "salt": ("STRING", {{}})}}}}

    def run(self, index, salt):
        time.sleep({WAIT_S})
        return (index,)


class Join:
    CATEGORY = "bench"
    OUTPUT_NODE = True
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    INPUT_IS_LIST = False

    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{f"v{{i}}": ("INT", {{}}) for i in range({WAITS})}}}}

    def run(self, **values):
        total = sum(values.values())
        return {{"ui": {{"total": [total]}}, "result": (total,)}}


NODE_CLASS_MAPPINGS = {{"Wait": Wait, "Join": Join}}
'''


def io_prompt(salt: str) -> dict[str, Any]:
    prompt: dict[str, Any] = {f"w{i}": {"class_type": "Wait", "inputs": {"index": i, "salt": salt}}
                              for i in range(WAITS)}
    prompt["join"] = {"class_type": "Join", "inputs": {f"v{i}": [f"w{i}", 0] for i in range(WAITS)}}
    return prompt




async def throughput(engine: Engine, backend: Any, prompts: int, tag: str) -> float:
    """Seconds from the first claim to the last history write, for `prompts` queued prompts."""
    for n in range(prompts):
        engine.submit(io_prompt(f"{tag}-{n}"), prompt_id=f"{tag}-{n}")
    stop = asyncio.Event()
    done = 0

    def finished(item: Any, result: Any) -> None:
        nonlocal done
        if result.status != "success":
            raise AssertionError(f"{item.prompt_id}: {result.status} {result.error}")
        done += 1
        if done == prompts:
            stop.set()

    started = time.perf_counter()
    await Dispatcher(engine, backend, on_finish=finished).serve(stop)
    return time.perf_counter() - started


async def latency(engine: Engine, backend: Any, prompt: dict[str, Any], runs: int, tag: str) -> float:
    """Median seconds of `backend.run` for a trivial prompt (claimed beforehand; history written after)."""
    samples = []
    for n in range(runs + 3):
        item = engine.submit(prompt, prompt_id=f"{tag}-{n}")
        claimed = engine.queue.claim()
        assert claimed is not None and claimed.prompt_id == item.prompt_id
        started = time.perf_counter()
        result = await backend.run(claimed, lambda event: None)
        elapsed = time.perf_counter() - started
        engine.queue.finish(claimed, outputs=result.outputs, status=result.history_status())
        assert result.status == "success", result.error
        if n >= 3:
            samples.append(elapsed)
    return statistics.median(samples)


class NativePromptRunner:
    """Ray-native peer of a prompt worker: one prompt's waits in threads, then the join."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=WAITS)

    async def run(self, salt: str) -> int:
        loop = asyncio.get_running_loop()
        values = await asyncio.gather(*(loop.run_in_executor(self.pool, _wait, i) for i in range(WAITS)))
        return sum(values)


def _wait(index: int) -> int:
    time.sleep(WAIT_S)
    return index


async def native_throughput(workers: int, prompts: int) -> float:
    import ray

    actors = [ray.remote(NativePromptRunner).options(num_cpus=0).remote() for _ in range(workers)]
    await asyncio.gather(*(a.run.remote("warm") for a in actors))
    free: asyncio.Queue[Any] = asyncio.Queue()
    for actor in actors:
        free.put_nowait(actor)

    async def one(n: int) -> None:
        actor = await free.get()
        try:
            assert await actor.run.remote(f"native-{n}") == sum(range(WAITS))
        finally:
            free.put_nowait(actor)

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(prompts)))
    elapsed = time.perf_counter() - started
    for actor in actors:
        ray.kill(actor)
    return elapsed


async def measure(engine: Engine, args: argparse.Namespace) -> int:
    import ray

    worker_counts = [int(n) for n in args.workers.split(",")]
    rows: list[list[str]] = []
    goals: list[Goal] = []
    local = LocalBackend(engine)
    local_s = await throughput(engine, local, args.prompts, "local")
    local_rate = args.prompts / local_s
    rows.append(["local backend (one prompt at a time)", f"{local_s:.2f}", f"{local_rate:.2f}", "1.00x", "", ""])
    trivial = {"1": {"class_type": "Join", "inputs": {f"v{i}": i for i in range(WAITS)}}}
    local_latency = await latency(engine, local, trivial, args.runs, "lat-local")

    base = BackendSettings.from_raw({"engine": {"backend": "ray", "ray_address": "local", "ray_num_cpus": 2,
                                                "ray_object_store_bytes": 100_000_000,
                                                "ray_shared_cache": not args.no_shared_cache}})
    backends: list[RayBackend] = []
    ray_latency = None
    try:
        for workers in worker_counts:
            settings = BackendSettings(**{**base.__dict__, "workers": workers, "namespace": f"bench-{workers}"})
            backend = RayBackend(engine, settings)
            backends.append(backend)
            await backend.start()
            await throughput(engine, backend, min(8, args.prompts), f"warm-{workers}")  # workers' first prompts
            seconds = await throughput(engine, backend, args.prompts, f"ray{workers}")
            rate = args.prompts / seconds
            speedup = rate / local_rate
            native_s = await native_throughput(workers, args.prompts)
            vs_native = seconds / native_s
            rows.append([f"ray backend, {workers} worker(s)", f"{seconds:.2f}", f"{rate:.2f}", f"{speedup:.2f}x",
                         f"{native_s:.2f}", f"{vs_native:.2f}x"])
            goals.append(Goal(f"{workers} worker(s) near-linear", speedup >= LINEAR_SHARE * workers,
                              f"{speedup:.2f}x the local backend's throughput (goal >= {LINEAR_SHARE * workers:.1f}x)"))
            goals.append(Goal(f"{workers} worker(s) vs Ray-native", vs_native <= NATIVE_GOAL,
                              f"{seconds:.2f} s vs {native_s:.2f} s = {vs_native:.2f}x (goal <= {NATIVE_GOAL}x)"))
            if ray_latency is None:
                ray_latency = await latency(engine, backend, trivial, args.runs, f"lat-ray{workers}")
    finally:
        for backend in backends:
            await backend.close()
        if ray.is_initialized():
            ray.shutdown()
    show_table(f"{args.prompts} prompts of {WAITS} x {WAIT_S * 1e3:.0f} ms waits (durable queue, history written)",
               ["backend", "seconds", "prompts/s", "vs local", "Ray-native s", "vs Ray-native"], rows)
    assert ray_latency is not None
    added_ms = (ray_latency - local_latency) * 1e3
    show_table(f"trivial prompt (one node), median of {args.runs}",
               ["backend", "ms per prompt"], [["local", f"{local_latency * 1e3:.2f}"],
                                               ["ray", f"{ray_latency * 1e3:.2f}"], ["added by Ray", f"{added_ms:.2f}"]])
    goals.append(Goal("added latency of a trivial prompt", added_ms <= LATENCY_GOAL_MS,
                      f"{added_ms:.2f} ms (goal <= {LATENCY_GOAL_MS:.0f} ms)"))
    return report_goals(goals, check=not args.no_check)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure (default 1,2,4)")
    parser.add_argument("--runs", type=int, default=30, help="trivial prompts timed for the latency (median)")
    parser.add_argument("--no-check", action="store_true", help="only print; exit 0 even if a goal is missed")
    parser.add_argument("--no-shared-cache", action="store_true",
                        help="workers without the shared node cache (its cost: two calls to the store per prompt)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="partyflow-bench-ray-") as home:
        pack = Path(home, "custom_nodes", "bench_nodes")
        pack.mkdir(parents=True)
        (pack / "__init__.py").write_text(PACK, encoding="utf-8")
        # the waits are I/O: let them overlap, as a pack marked parallel does (third-party packs run one node at
        # a time otherwise, ComfyUI's semantics); the workers read the same config.toml
        Path(home, "config.toml").write_text("[packs.bench_nodes]\nparallel = true\n", encoding="utf-8")
        engine = Engine(home=home, builtin_packs=(), cache="none")
        try:
            console.print(f"{args.prompts} prompts; workers {args.workers}; waits {WAITS} x {WAIT_S * 1e3:.0f} ms")
            return asyncio.run(measure(engine, args))
        finally:
            engine.close()


if __name__ == "__main__":
    sys.exit(main())
