"""Output cache: an unchanged re-run executes nothing; one changed input re-executes only its descendants.

The workflow is a 50-layer x 10-lane lattice (500 trivial nodes): node (layer, j) reads (layer-1, j) and
(layer-1, j+1 mod 10) and adds its constant `step`. Changing `step` of node (40, 3) re-executes that node
and every node below it that can reach it: d layers further down that is min(d+1, 10) nodes, 55 in all.
The count is asserted twice: against that formula and against a walk of the prompt's links.

The peer here is our own first run, on a fresh cache (cache="classic", ComfyUI's default strategy).
"""

from __future__ import annotations

import copy
import sys
import time

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

LAYERS, LANES = 50, 10
CHANGED = (40, 3)
GOAL_SHARE = 0.05

PACK = '''
class Step:
    """max(a, b) + step."""
    CATEGORY = "bench"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {}), "b": ("INT", {}), "step": ("INT", {})}}

    def run(self, a, b, step):
        return (max(a, b) + step,)


class Seed:
    """Returns its constant."""
    CATEGORY = "bench"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT", {})}}

    def run(self, x):
        return (x,)


class StepOut(Step):
    OUTPUT_NODE = True


NODE_CLASS_MAPPINGS = {"Step": Step, "Seed": Seed, "StepOut": StepOut}
'''


def node_id(layer: int, lane: int) -> str:
    return f"l{layer}_{lane}"


def lattice() -> Prompt:
    prompt: Prompt = {node_id(0, j): {"class_type": "Seed", "inputs": {"x": j}} for j in range(LANES)}
    for layer in range(1, LAYERS):
        class_type = "StepOut" if layer == LAYERS - 1 else "Step"
        for j in range(LANES):
            inputs = {"a": [node_id(layer - 1, j), 0], "b": [node_id(layer - 1, (j + 1) % LANES), 0], "step": 1}
            prompt[node_id(layer, j)] = {"class_type": class_type, "inputs": inputs}
    return prompt


def expected_descendants(layer: int) -> int:
    """The changed node plus everything below it that can reach it (the formula in the module docstring)."""
    return sum(min(d + 1, LANES) for d in range(LAYERS - layer))


def descendants(prompt: Prompt, root: str) -> set[str]:
    """`root` and every node that reads from it, directly or not (a walk over the prompt's links)."""
    readers: dict[str, list[str]] = {}
    for nid, node in prompt.items():
        for value in node["inputs"].values():
            if isinstance(value, list):
                readers.setdefault(value[0], []).append(nid)
    found, stack = {root}, [root]
    while stack:
        for reader in readers.get(stack.pop(), ()):
            if reader not in found:
                found.add(reader)
                stack.append(reader)
    return found


def checked_run(engine: Engine, prompt: Prompt) -> RunResult:
    result = engine.run(prompt)
    if result.status != "success":
        raise AssertionError(f"run failed: {result.error}")
    return result


def first_run_seconds(engine: Engine, prompt: Prompt, runs: int) -> float:
    """Median time of a run on an empty cache (the cache is cleared outside the timing)."""
    samples = []
    for _ in range(runs + 1):  # the first one is warm-up
        engine.clear_cache()
        started = time.perf_counter()
        result = checked_run(engine, prompt)
        samples.append(time.perf_counter() - started)
        if len(result.executed) != len(prompt):
            raise AssertionError(f"first run executed {len(result.executed)} of {len(prompt)} nodes")
    return sorted(samples[1:])[len(samples[1:]) // 2]


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], runs=7)
    prompt = lattice()
    changed = copy.deepcopy(prompt)
    target = node_id(*CHANGED)
    changed[target]["inputs"]["step"] = 2
    expected = descendants(prompt, target)
    if len(expected) != expected_descendants(CHANGED[0]):
        raise AssertionError(f"link walk found {len(expected)} descendants, the formula says "
                             f"{expected_descendants(CHANGED[0])}")
    executed_on_rerun: list[int] = []

    def rerun_check(result: RunResult) -> None:
        executed_on_rerun.append(len(result.executed))

    with engine_with_pack(PACK, cache="classic") as engine:
        first = first_run_seconds(engine, prompt, args.runs)
        checked_run(engine, prompt)
        rerun = median_seconds(lambda: checked_run(engine, prompt), runs=args.runs, warmup=1, check=rerun_check)
        started = time.perf_counter()
        after_change = checked_run(engine, changed)
        change_seconds = time.perf_counter() - started
    share = ratio(rerun, first)
    rows = [["first run (empty cache)", f"{first * 1e3:.2f}", "100.0%", f"{len(prompt)}", f"{len(prompt)}"],
            ["unchanged re-run", f"{rerun * 1e3:.2f}", f"{share:.1%}", f"{max(executed_on_rerun)}", "0"],
            [f"step of {target} changed", f"{change_seconds * 1e3:.2f}", f"{ratio(change_seconds, first):.1%}",
             f"{len(after_change.executed)}", f"{len(expected)}"]]
    show_table(f"Cache on a {len(prompt)}-node workflow (cache='classic', median of {args.runs} runs)",
               ["run", "ms", "of first run", "nodes executed", "expected"], rows)
    goals = [
        Goal("unchanged re-run executes no node", max(executed_on_rerun) == 0,
             f"executed {max(executed_on_rerun)} node(s) at most over {len(executed_on_rerun)} re-runs"),
        Goal(f"unchanged re-run costs < {GOAL_SHARE:.0%} of the first", share < GOAL_SHARE,
             f"{rerun * 1e3:.2f} ms / {first * 1e3:.2f} ms = {share:.1%}"),
        Goal("a changed input re-executes exactly its descendants", set(after_change.executed) == expected,
             f"executed {len(after_change.executed)}, descendants {len(expected)}"),
    ]
    return report_goals(goals, check=not args.no_check)


if __name__ == "__main__":
    sys.exit(main())
