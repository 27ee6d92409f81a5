"""Per-node scheduling overhead of trivial nodes: partyflow against LangGraph on the same graph shapes.

Shapes (every node adds one to an int):
  chain    2,000 nodes, each reading the one before
  fan-out  one source feeding 2,000 output nodes
  lattice  50 layers x 40 lanes; node (layer, j) reads (layer-1, j) and (layer-1, j+1 mod 40)

partyflow runs with cache="none" (every node executes) after warm-up runs (so CallSpeeds has learned that
the sync nodes are trivially fast); the time is `Engine.run` end to end, validation included. LangGraph runs
a StateGraph compiled once outside the timing; the time is `invoke` (sync nodes) or `ainvoke` (async nodes).
Goal: partyflow at least 10x lower per node on every shape, for sync and for async nodes.
"""

from __future__ import annotations

import asyncio
import operator
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

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

CHAIN = 2000
FAN_OUT = 2000
LAYERS, LANES = 50, 40
GOAL_RATIO = 10.0

PACK = '''
class Inc:
    """x + 1."""
    CATEGORY = "bench"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT", {})}}

    def run(self, x):
        return (x + 1,)


class Pair:
    """max(a, b) + 1."""
    CATEGORY = "bench"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {}), "b": ("INT", {})}}

    def run(self, a, b):
        return (max(a, b) + 1,)


class AsyncInc(Inc):
    async def run(self, x):
        return (x + 1,)


class AsyncPair(Pair):
    async def run(self, a, b):
        return (max(a, b) + 1,)


def _output(cls):
    return type(cls.__name__ + "Out", (cls,), {"OUTPUT_NODE": True})


NODE_CLASS_MAPPINGS = {}
for _cls in (Inc, Pair, AsyncInc, AsyncPair):
    NODE_CLASS_MAPPINGS[_cls.__name__] = _cls
    NODE_CLASS_MAPPINGS[_cls.__name__ + "Out"] = _output(_cls)
'''


# ---- partyflow prompts -------------------------------------------------------------------------------------


def _node(class_type: str, output: bool, prefix: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": prefix + class_type + ("Out" if output else ""), "inputs": inputs}


def chain_prompt(prefix: str) -> Prompt:
    prompt = {"n0": _node("Inc", False, prefix, x=0)}
    for i in range(1, CHAIN):
        prompt[f"n{i}"] = _node("Inc", i == CHAIN - 1, prefix, x=[f"n{i - 1}", 0])
    return prompt


def fan_out_prompt(prefix: str) -> Prompt:
    prompt = {"src": _node("Inc", False, prefix, x=0)}
    for i in range(FAN_OUT):
        prompt[f"o{i}"] = _node("Inc", True, prefix, x=["src", 0])
    return prompt


def lattice_id(layer: int, lane: int) -> str:
    return f"l{layer}_{lane}"


def lattice_prompt(prefix: str) -> Prompt:
    prompt = {lattice_id(0, j): _node("Inc", False, prefix, x=j) for j in range(LANES)}
    for layer in range(1, LAYERS):
        last = layer == LAYERS - 1
        for j in range(LANES):
            a, b = lattice_id(layer - 1, j), lattice_id(layer - 1, (j + 1) % LANES)
            prompt[lattice_id(layer, j)] = _node("Pair", last, prefix, a=[a, 0], b=[b, 0])
    return prompt


def lattice_expected() -> list[int]:
    """The last layer's values, computed in plain Python."""
    values = [j + 1 for j in range(LANES)]
    for _ in range(1, LAYERS):
        values = [max(values[j], values[(j + 1) % LANES]) + 1 for j in range(LANES)]
    return values


# ---- LangGraph graphs --------------------------------------------------------------------------------------


class ChainState(TypedDict):
    x: int


class FanState(TypedDict):
    x: int
    total: Annotated[int, operator.add]


def _merge(left: dict[int, int], right: dict[int, int]) -> dict[int, int]:
    return {**left, **right}


class LatticeState(TypedDict):
    vals: Annotated[dict[int, int], _merge]


def _fn(body: Callable[[Any], dict[str, Any]], is_async: bool) -> Callable[[Any], Any]:
    """`body` as a sync node, or wrapped in an `async def` node."""
    if not is_async:
        return body

    async def node(state: Any) -> dict[str, Any]:
        return body(state)
    return node


def lg_chain(is_async: bool) -> Any:
    graph = StateGraph(ChainState)
    for i in range(CHAIN):
        graph.add_node(f"n{i}", _fn(lambda s: {"x": s["x"] + 1}, is_async))
        graph.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    graph.add_edge(f"n{CHAIN - 1}", END)
    return graph.compile()


def lg_fan_out(is_async: bool) -> Any:
    graph = StateGraph(FanState)
    graph.add_node("src", _fn(lambda s: {"x": s["x"] + 1}, is_async))
    graph.add_edge(START, "src")
    for i in range(FAN_OUT):
        graph.add_node(f"o{i}", _fn(lambda s: {"total": s["x"] + 1}, is_async))
        graph.add_edge("src", f"o{i}")
        graph.add_edge(f"o{i}", END)
    return graph.compile()


def _lattice_body(layer: int, lane: int) -> Callable[[Any], dict[str, Any]]:
    if layer == 0:
        return lambda s: {"vals": {lane: lane + 1}}
    right = (lane + 1) % LANES
    return lambda s: {"vals": {lane: max(s["vals"][lane], s["vals"][right]) + 1}}


def lg_lattice(is_async: bool) -> Any:
    graph = StateGraph(LatticeState)
    for layer in range(LAYERS):
        for j in range(LANES):
            graph.add_node(lattice_id(layer, j), _fn(_lattice_body(layer, j), is_async))
            if layer == 0:
                graph.add_edge(START, lattice_id(0, j))
            else:
                sources = [lattice_id(layer - 1, j), lattice_id(layer - 1, (j + 1) % LANES)]
                graph.add_edge(sources, lattice_id(layer, j))
    for j in range(LANES):
        graph.add_edge(lattice_id(LAYERS - 1, j), END)
    return graph.compile()


# ---- shapes -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    name: str
    nodes: int
    prompt: Callable[[str], Prompt]
    check_partyflow: Callable[[RunResult], None]
    langgraph: Callable[[bool], Any]
    langgraph_input: dict[str, Any]
    check_langgraph: Callable[[dict[str, Any]], None]


def _expect(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def _ran_all(result: RunResult, nodes: int) -> None:
    _expect(result.status, "success", "partyflow status")
    _expect(len(result.executed), nodes, "partyflow executed nodes")


def _check_chain(result: RunResult) -> None:
    _ran_all(result, CHAIN)
    _expect(result.output(f"n{CHAIN - 1}"), CHAIN, "chain end")


def _check_fan_out(result: RunResult) -> None:
    _ran_all(result, FAN_OUT + 1)
    _expect(sum(result.output(f"o{i}") for i in range(FAN_OUT)), 2 * FAN_OUT, "fan-out sum")


def _check_lattice(result: RunResult) -> None:
    _ran_all(result, LAYERS * LANES)
    last = [result.output(lattice_id(LAYERS - 1, j)) for j in range(LANES)]
    _expect(last, lattice_expected(), "lattice last layer")


SHAPES = (
    Shape("chain", CHAIN, chain_prompt, _check_chain, lg_chain, {"x": 0},
          lambda out: _expect(out["x"], CHAIN, "langgraph chain end")),
    Shape("fan-out", FAN_OUT + 1, fan_out_prompt, _check_fan_out, lg_fan_out, {"x": 0, "total": 0},
          lambda out: _expect(out["total"], 2 * FAN_OUT, "langgraph fan-out sum")),
    Shape("lattice 50x40", LAYERS * LANES, lattice_prompt, _check_lattice, lg_lattice, {"vals": {}},
          lambda out: _expect([out["vals"][j] for j in range(LANES)], lattice_expected(), "langgraph lattice")),
)


# ---- measuring ----------------------------------------------------------------------------------------------


def partyflow_us(engine: Engine, shape: Shape, is_async: bool, runs: int) -> float:
    prompt = shape.prompt("Async" if is_async else "")
    seconds = median_seconds(lambda: engine.run(prompt), runs=runs, warmup=2, check=shape.check_partyflow)
    return seconds * 1e6 / shape.nodes


def langgraph_us(shape: Shape, is_async: bool, runs: int) -> float:
    app = shape.langgraph(is_async)
    config = {"recursion_limit": shape.nodes + 10}  # the default (25) stops a 2,000-step chain
    if is_async:
        def call() -> Any:
            return asyncio.run(app.ainvoke(dict(shape.langgraph_input), config))
    else:
        def call() -> Any:
            return app.invoke(dict(shape.langgraph_input), config)
    return median_seconds(call, runs=runs, warmup=1, check=shape.check_langgraph) * 1e6 / shape.nodes


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], runs=5)
    rows, goals = [], []
    with engine_with_pack(PACK, cache="none") as engine:
        for shape in SHAPES:
            cells = [shape.name, f"{shape.nodes:,}"]
            for is_async in (False, True):
                kind = "async" if is_async else "sync"
                peer = langgraph_us(shape, is_async, args.runs)
                ours = partyflow_us(engine, shape, is_async, args.runs)
                cells += [f"{peer:.1f}", f"{ours:.1f}", f"{ratio(peer, ours):.1f}x"]
                goals.append(Goal(f"{shape.name} ({kind} nodes)", ratio(peer, ours) >= GOAL_RATIO,
                                  f"LangGraph {peer:.1f} us/node / partyflow {ours:.1f} us/node = "
                                  f"{ratio(peer, ours):.1f}x (goal >= {GOAL_RATIO:.0f}x)"))
            rows.append(cells)
    show_table(f"Scheduling overhead, us/node (median of {args.runs} runs)",
               ["shape", "nodes", "LangGraph sync", "partyflow sync", "ratio",
                "LangGraph async", "partyflow async", "ratio"], rows)
    return report_goals(goals, check=not args.no_check)


if __name__ == "__main__":
    sys.exit(main())
