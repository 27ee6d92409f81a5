"""While and for-each loops built by graph expansion, the way ComfyUI runs loops.

A loop is an open node and a close node; the nodes on the paths between them are the body. When the close
node runs and the loop must go on, it returns an expansion: a fresh copy of open, body and close, whose
open node starts from this pass's values. The engine runs the copy, whose close node decides again, and
the original close node's outputs become the last copy's outputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from comfy_execution.graph_utils import GraphBuilder, is_link

from .sockets import ANY, FLOW_CONTROL, JSON

CATEGORY = "partyflow/loops"

LOOP_VALUES = 4
VALUE_NAMES = tuple(f"value_{n}" for n in range(1, LOOP_VALUES + 1))
CLOSE_COPY = "Recurse"  # the copied close node's local id
_WRAPPED = "partyflow_loop_value"

SET_BY_LOOP = "Set by the loop itself when it repeats; leave unconnected."


# --- the expansion --------------------------------------------------------------------------------------------


def _children_among_ancestors(dynprompt: Any, node_id: str) -> dict[str, list[str]]:
    """For every ancestor of `node_id`, the nodes it feeds on the way to `node_id`."""
    children: dict[str, list[str]] = {}
    pending, seen = [node_id], {node_id}
    while pending:
        current = pending.pop()
        for value in dynprompt.get_node(current).get("inputs", {}).values():
            if not is_link(value):
                continue
            parent = value[0]
            children.setdefault(parent, []).append(current)
            if parent not in seen:
                seen.add(parent)
                pending.append(parent)
    return children


def loop_body(dynprompt: Any, open_id: str, close_id: str) -> list[str]:
    """The nodes on some path from `open_id` to `close_id`, both included: what one pass runs."""
    children = _children_among_ancestors(dynprompt, close_id)
    if open_id not in children:
        raise ValueError(f"the loop close node {close_id} is not downstream of its open node {open_id}")
    body = {open_id: None}
    pending = [open_id]
    while pending:
        for child in children.get(pending.pop(), ()):
            if child not in body:
                body[child] = None
                pending.append(child)
    return list(body)


@dataclass
class LoopCopy:
    """The next pass: its graph, and its open and close nodes (GraphBuilder nodes) for setting inputs."""

    graph: GraphBuilder
    open: Any
    close: Any


def copy_loop(dynprompt: Any, open_id: str, close_id: str) -> LoopCopy:
    """A copy of the loop's open node, body and close node (the close node under CLOSE_COPY).

    Links between body nodes point at the copies; links to nodes outside the loop and constants stay.
    Copied ids are `<loop>#<pass>.<local id>`: the same length on every pass (only the pass number grows), so
    a 10,000-pass loop's ids, progress messages and history keys stay short (ComfyUI's GraphBuilder prefixes
    grow by one prefix per pass, which made messages grow linearly and traffic quadratically).
    """
    body = loop_body(dynprompt, open_id, close_id)
    root, previous, passes = _pass_of(open_id, close_id)
    local = {node_id: CLOSE_COPY if node_id == close_id else node_id.removeprefix(previous) for node_id in body}
    graph = GraphBuilder(prefix=f"{root}#{passes + 1}.")
    for node_id in body:
        graph.node(dynprompt.get_node(node_id)["class_type"], local[node_id]).set_override_display_id(node_id)
    for node_id in body:
        copy = graph.lookup_node(local[node_id])
        for name, value in dynprompt.get_node(node_id).get("inputs", {}).items():
            if is_link(value) and value[0] in local:
                value = graph.lookup_node(local[value[0]]).out(value[1])
            copy.set_input(name, value)
    return LoopCopy(graph, graph.lookup_node(local[open_id]), graph.lookup_node(CLOSE_COPY))


_PASS = re.compile(rf"^(?P<root>.+)#(?P<n>\d+)\.{CLOSE_COPY}$")


def _pass_of(open_id: str, close_id: str) -> tuple[str, str, int]:
    """(the loop's root id, the prefix the current pass's copy was made under, the current pass number).

    The first pass runs the original nodes: the root is a fresh GraphBuilder prefix of the close node (which holds
    its call index, so a close node called once per item of a list makes distinct copies), prefix "", pass 0.
    """
    found = _PASS.match(close_id)
    if found is not None:
        prefix = f"{found['root']}#{found['n']}."
        if open_id.startswith(prefix):
            return found["root"], prefix, int(found["n"])
    return GraphBuilder.alloc_prefix(root=close_id).rstrip("."), "", 0


def protect(value: Any) -> Any:
    """Wrap a value that a prompt would mistake for a link `[node_id, index]` when set as a constant input."""
    looks_like_link = isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], str)
    return {_WRAPPED: value} if looks_like_link else value


def unprotect(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and _WRAPPED in value:
        return value[_WRAPPED]
    return value


def _constant_int(node: Any, name: str, default: int) -> int:
    value = node.get("inputs", {}).get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"the loop open node's '{name}' input must be left unconnected; the loop sets it")
    return value


def _values_input() -> dict[str, Any]:
    return {name: (ANY, {"tooltip": f"Loop value {name[-1]}: the start value on the open node, the value for "
                                    "the next pass on the close node."})
            for name in VALUE_NAMES}


def _max_iterations(default: int) -> tuple[str, dict[str, Any]]:
    return ("INT", {"default": default, "min": 1, "max": 1_000_000,
                    "tooltip": "Stop with an error after this many passes (guards against endless loops)."})


# --- while ------------------------------------------------------------------------------------------------------


class WhileLoopOpen:
    DESCRIPTION = ("Start of a while loop: passes its values into the loop body. Connect flow_control to a "
                   "While Loop Close node; the nodes between them repeat while its condition is true.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (FLOW_CONTROL, *(ANY,) * LOOP_VALUES, "INT")
    RETURN_NAMES = ("flow_control", *VALUE_NAMES, "iteration")
    OUTPUT_TOOLTIPS = ("Connect to the While Loop Close node.",
                       *(f"This pass's {name}." for name in VALUE_NAMES),
                       "Which pass this is, from 0.")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {},
                "optional": {**_values_input(),
                             "iteration": ("INT", {"forceInput": True, "tooltip": SET_BY_LOOP})}}

    def run(self, iteration=0, **values):
        return ("while", *(unprotect(values.get(name)) for name in VALUE_NAMES), iteration)


class WhileLoopClose:
    DESCRIPTION = ("End of a while loop: while condition is true, runs the body again with this node's values "
                   "as the next start values; when false, outputs them.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (ANY,) * LOOP_VALUES
    RETURN_NAMES = VALUE_NAMES
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "flow_control": (FLOW_CONTROL, {"rawLink": True, "tooltip": "From the While Loop Open node."}),
                "condition": ("BOOLEAN", {"forceInput": True, "tooltip": "Run another pass while this is true."}),
                "max_iterations": _max_iterations(1000),
            },
            "optional": _values_input(),
            "hidden": {"dynprompt": "DYNPROMPT", "unique_id": "UNIQUE_ID"},
        }

    def run(self, flow_control, condition, max_iterations, dynprompt=None, unique_id=None, **values):
        current = tuple(values.get(name) for name in VALUE_NAMES)
        if not condition:
            return current
        if not is_link(flow_control):
            raise ValueError("flow_control must be linked to a While Loop Open node")
        open_id = flow_control[0]
        iteration = _constant_int(dynprompt.get_node(open_id), "iteration", 0)
        if iteration + 1 >= max_iterations:
            raise RuntimeError(f"the while loop ran {iteration + 1} passes (max_iterations) and its condition is "
                               "still true; check the condition or raise max_iterations")
        loop = copy_loop(dynprompt, open_id, unique_id)
        for name, value in zip(VALUE_NAMES, current, strict=True):
            loop.open.set_input(name, protect(value))
        loop.open.set_input("iteration", iteration + 1)
        return {"result": tuple(loop.close.out(i) for i in range(LOOP_VALUES)), "expand": loop.graph.finalize()}


# --- for each ---------------------------------------------------------------------------------------------------


class ForEachOpen:
    DESCRIPTION = ("Start of a for-each loop over a JSON list: the body between this node and For Each Close "
                   "runs once per item, and the close node collects each pass's result.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (FLOW_CONTROL, ANY, "INT", "INT")
    RETURN_NAMES = ("flow_control", "item", "index", "total")
    OUTPUT_TOOLTIPS = ("Connect to the For Each Close node.", "The item of this pass.",
                       "The item's position, from 0.", "How many items there are.")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"items": (JSON, {"tooltip": "The JSON list to go through."})},
                "optional": {"index": ("INT", {"forceInput": True, "tooltip": SET_BY_LOOP})}}

    def run(self, items, index=0):
        if not isinstance(items, list):
            raise ValueError(f"'items' must be a JSON list, got {type(items).__name__}")
        item = items[index] if index < len(items) else None
        return ({"index": index, "total": len(items)}, item, index, len(items))


class ForEachClose:
    DESCRIPTION = ("End of a for-each loop: collects the body's result for every item into a JSON list. "
                   "An empty list gives an empty result without running the body.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (JSON,)
    RETURN_NAMES = ("results",)
    OUTPUT_TOOLTIPS = ("The body's results, one per item, in order.",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        # flow_control carries the open node's position (index, total) as a value, which the close node
        # needs before the first repeat; the open node's id comes from this node's own links in DYNPROMPT.
        return {
            "required": {
                "flow_control": (FLOW_CONTROL, {"tooltip": "From the For Each Open node."}),
                "result": (ANY, {"lazy": True, "tooltip": "The body's result for the current item."}),
                "max_iterations": _max_iterations(10_000),
            },
            "optional": {"accumulated": (JSON, {"forceInput": True, "tooltip": SET_BY_LOOP})},
            "hidden": {"dynprompt": "DYNPROMPT", "unique_id": "UNIQUE_ID"},
        }

    def check_lazy_status(self, flow_control, result=None, **_):
        """An empty list needs no pass of the body; otherwise the current item's result."""
        return ["result"] if _position(flow_control)[1] > 0 and result is None else []

    def run(self, flow_control, max_iterations, result=None, accumulated=None, dynprompt=None, unique_id=None):
        index, total = _position(flow_control)
        if total > max_iterations:
            raise RuntimeError(f"the for-each loop has {total} items, more than max_iterations={max_iterations}; "
                               "raise max_iterations to go through all of them")
        if total == 0:
            return ([],)
        results = [*(unprotect(accumulated) or []), result]
        if index + 1 >= total:
            return (results,)
        open_id = dynprompt.get_node(unique_id)["inputs"]["flow_control"][0]
        loop = copy_loop(dynprompt, open_id, unique_id)
        loop.open.set_input("index", index + 1)
        loop.close.set_input("accumulated", protect(results))
        return {"result": (loop.close.out(0),), "expand": loop.graph.finalize()}


def _position(flow_control: Any) -> tuple[int, int]:
    if not (isinstance(flow_control, dict) and isinstance(flow_control.get("index"), int)
            and isinstance(flow_control.get("total"), int)):
        raise ValueError("flow_control must come from a For Each Open node")
    return flow_control["index"], flow_control["total"]


NODE_CLASS_MAPPINGS = {
    "WhileLoopOpen": WhileLoopOpen,
    "WhileLoopClose": WhileLoopClose,
    "ForEachOpen": ForEachOpen,
    "ForEachClose": ForEachClose,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "WhileLoopOpen": "While Loop Open",
    "WhileLoopClose": "While Loop Close",
    "ForEachOpen": "For Each Open",
    "ForEachClose": "For Each Close",
}
