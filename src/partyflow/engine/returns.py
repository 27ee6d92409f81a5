"""What nodes return: normalised to one list per output, merged over mapped calls, checked against RETURN_TYPES."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

from partyflow.engine.cache import NodeResult
from partyflow.engine.failures import NodeExecutionError
from partyflow.graph.dynamic import DynamicPrompt
from partyflow.nodes.protocol import NodeDefinition
from partyflow.nodes.values import ExecutionBlocker, is_link


def normalise(definition: NodeDefinition, raw: list[Any]) -> tuple[list[tuple[Any, ...]], dict[str, Any] | None, list[Mapping[str, Any]]]:
    """Each call's return value as (outputs tuple), plus the merged ui and any expansion graphs."""
    arity = len(definition.return_types)
    values: list[tuple[Any, ...]] = []
    ui: dict[str, Any] | None = None
    graphs: list[Mapping[str, Any]] = []
    for returned in raw:
        result: Any = returned
        if isinstance(returned, dict):
            if "ui" in returned and returned["ui"] is not None:
                if not isinstance(returned["ui"], Mapping):
                    raise NodeExecutionError(f"returned a 'ui' of type {type(returned['ui']).__name__}; it must be a dict")
                ui = ui or {}
                for key, item in returned["ui"].items():
                    ui.setdefault(key, []).extend(item if isinstance(item, list) else [item])
            if returned.get("expand") is not None:
                if not isinstance(returned["expand"], Mapping):
                    raise NodeExecutionError("returned an 'expand' that is not an API-format graph (a dict of nodes)")
                graphs.append(returned["expand"])
            result = returned.get("result", (None,) * arity)
        elif result is None and arity == 0:
            result = ()
        elif isinstance(result, ExecutionBlocker):
            result = (result,) * arity
        if not isinstance(result, (tuple, list)):
            raise NodeExecutionError(
                f"{definition.class_type}.{definition.function} returned {type(result).__name__}; it must return a "
                f"tuple with one value per RETURN_TYPES entry ({arity})", exception_type="ReturnValueError")
        if len(result) != arity:
            raise NodeExecutionError(
                f"{definition.class_type}.{definition.function} returned {len(result)} value(s) but RETURN_TYPES "
                f"declares {arity} {definition.return_types}", exception_type="ReturnValueError")
        values.append(tuple(result))
    return values, ui, graphs


def merge_outputs(definition: NodeDefinition, values: list[tuple[Any, ...]],
                   results: Mapping[str, NodeResult]) -> tuple[list[Any], ...]:
    """One list per output slot over all calls; links returned by an expansion read the expanded node's output."""
    merged: list[list[Any]] = [[] for _ in definition.return_types]
    for result in values:
        for index, value in enumerate(result):
            if is_link(value) and value[0] in results:
                merged[index].extend(results[value[0]].outputs[value[1]])
            elif definition.output_is_list[index]:
                if not isinstance(value, (list, tuple)):
                    raise NodeExecutionError(
                        f"output {index} ({definition.return_names[index]}) is declared OUTPUT_IS_LIST but the node "
                        f"returned {type(value).__name__}", exception_type="ReturnValueError")
                merged[index].extend(value)
            else:
                merged[index].append(value)
    return tuple(merged)


_PRIMITIVE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "INT": lambda v: type(v) is int or isinstance(v, numbers.Integral),  # exact type first: ABC checks are slow
    "FLOAT": lambda v: type(v) is float or type(v) is int or isinstance(v, numbers.Real),
    "STRING": lambda v: isinstance(v, str),
    "BOOLEAN": lambda v: isinstance(v, bool) or type(v).__name__ == "bool_",
}


def check_output_types(definition: NodeDefinition, outputs: tuple[list[Any], ...]) -> None:
    for index, kind in enumerate(definition.return_types):
        check = _PRIMITIVE_CHECKS.get(kind)
        if check is None:
            continue
        for value in outputs[index]:
            if value is not None and not isinstance(value, ExecutionBlocker) and not check(value):
                raise NodeExecutionError(
                    f"output {index} ({definition.return_names[index]}) is declared {kind} but the node returned "
                    f"{type(value).__name__} {short(value)}", exception_type="ReturnValueError")


def check_expanded_node(parent: str, new_id: Any, info: Any, dyn: DynamicPrompt) -> None:
    if not isinstance(new_id, str) or not isinstance(info, Mapping) or not isinstance(info.get("class_type"), str) \
            or not isinstance(info.get("inputs", {}), Mapping):
        raise NodeExecutionError(f"expansion graph entry {new_id!r} is not a node with class_type and inputs")
    if "inputs" not in info:
        raise NodeExecutionError(f"expansion graph node {new_id!r} has no inputs")
    if dyn.has_node(new_id):
        raise NodeExecutionError(f"expansion by node {parent} produced node id {new_id!r}, which already exists "
                                 "(use GraphBuilder so expanded ids get a unique prefix)")


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
