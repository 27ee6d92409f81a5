"""Concurrency: 64 independent nodes that each wait 200 ms, against the wait of one node.

Both a sync node (`time.sleep`, run in a worker thread) and an async node (`asyncio.sleep`, awaited) are
measured. The goal is a wall time under 1.5x one wait. ComfyUI's executor runs one node at a time, so its
bound (64 x 200 ms) is computed, not measured, and shown next to ours.
"""

from __future__ import annotations

import sys

from _support import (
    Goal,
    Prompt,
    engine_with_pack,
    median_seconds,
    parse_args,
    ratio,
    report_goals,
    show_table,
)
from partyflow.engine.engine import Engine, RunResult

WIDTH = 64
WAIT_S = 0.2
GOAL_RATIO = 1.5

PACK = f'''
import asyncio
import time


class Wait:
    """Sleeps {WAIT_S} s in a worker thread, then returns its index."""
    CATEGORY = "bench"
    OUTPUT_NODE = True
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{"index": ("INT", {{}})}}}}

    def run(self, index):
        time.sleep({WAIT_S})
        return (index,)


class AsyncWait(Wait):
    """Awaits asyncio.sleep({WAIT_S}), then returns its index."""

    async def run(self, index):
        await asyncio.sleep({WAIT_S})
        return (index,)


NODE_CLASS_MAPPINGS = {{"Wait": Wait, "AsyncWait": AsyncWait}}
'''


def wide_prompt(class_type: str, width: int) -> Prompt:
    """`width` independent output nodes (distinct inputs, so nothing could be shared between them)."""
    return {f"w{i}": {"class_type": class_type, "inputs": {"index": i}} for i in range(width)}


def run_checked(engine: Engine, prompt: Prompt, runs: int) -> float:
    """Median seconds of `engine.run(prompt)`, each run checked to have executed every node."""
    def check(result: RunResult) -> None:
        if result.status != "success" or len(result.executed) != len(prompt):
            raise AssertionError(f"expected {len(prompt)} executed nodes, got {result.status} {len(result.executed)}")
    return median_seconds(lambda: engine.run(prompt), runs=runs, warmup=1, check=check)


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], runs=3)
    sequential = WIDTH * WAIT_S
    rows, goals = [], []
    with engine_with_pack(PACK, cache="none") as engine:
        for label, class_type in (("sync (time.sleep)", "Wait"), ("async (asyncio.sleep)", "AsyncWait")):
            one = run_checked(engine, wide_prompt(class_type, 1), args.runs)
            many = run_checked(engine, wide_prompt(class_type, WIDTH), args.runs)
            measured = ratio(many, WAIT_S)
            rows.append([label, f"{one * 1e3:.0f}", f"{many * 1e3:.0f}", f"{measured:.2f}x",
                         f"{sequential * 1e3:,.0f}", f"{ratio(sequential, many):.1f}x"])
            goals.append(Goal(f"{WIDTH} x {label}", measured < GOAL_RATIO,
                              f"{many * 1e3:.0f} ms = {measured:.2f}x one {WAIT_S * 1e3:.0f} ms wait "
                              f"(goal < {GOAL_RATIO}x)"))
    show_table(f"{WIDTH} independent nodes waiting {WAIT_S * 1e3:.0f} ms each (median of {args.runs} runs)",
               ["node", "1 node ms", f"{WIDTH} nodes ms", f"{WIDTH} nodes / one wait",
                "sequential bound ms (ComfyUI, computed)", "speedup vs sequential"], rows)
    return report_goals(goals, check=not args.no_check)


if __name__ == "__main__":
    sys.exit(main())
