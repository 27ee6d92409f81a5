"""Build the API-format graphs a node returns for expansion (`{"result": ..., "expand": graph}`).

This is the public helper for pack authors, with ComfyUI's `GraphBuilder` semantics so that packs written
against ComfyUI work unchanged. Expanded node ids carry a prefix made from the expanding node's id, its call
index and a per-call graph counter (`"<node id>.<call index>.<graph index>."`), which keeps ids unique when a
node expands many times (loops) or once per item of a mapped list. The prefix comes from `current_scope()`
instead of ComfyUI's process-wide default, so concurrent node calls never share a counter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from partyflow.nodes.host import current_scope
from partyflow.nodes.values import is_link

__all__ = ["GraphBuilder", "Node", "add_graph_prefix", "is_link"]


class Node:
    """One node of a graph under construction; `out(i)` is a link to its i-th output."""

    def __init__(self, id: str, class_type: str, inputs: dict[str, Any]) -> None:
        self.id = id
        self.class_type = class_type
        self.inputs = inputs
        self.override_display_id: str | None = None

    def out(self, index: int) -> list[Any]:
        return [self.id, index]

    def set_input(self, key: str, value: Any) -> None:
        """Set an input; None removes it (how an optional input is left unconnected)."""
        if value is None:
            self.inputs.pop(key, None)
        else:
            self.inputs[key] = value

    def get_input(self, key: str) -> Any:
        return self.inputs.get(key)

    def set_override_display_id(self, override_display_id: str | None) -> None:
        """Show this node's progress under another node id (usually the expanding node's)."""
        self.override_display_id = override_display_id

    def serialize(self) -> dict[str, Any]:
        data: dict[str, Any] = {"class_type": self.class_type, "inputs": dict(self.inputs)}
        if self.override_display_id is not None:
            data["override_display_id"] = self.override_display_id
        return data

    def __repr__(self) -> str:
        return f"Node({self.id!r}, {self.class_type!r})"


class GraphBuilder:
    """Collects nodes under one id prefix and renders them as an API-format dict with `finalize()`."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix if prefix is not None else self.alloc_prefix()
        self.nodes: dict[str, Node] = {}
        self.id_gen = 1

    @classmethod
    def alloc_prefix(cls, root: str | None = None, call_index: int | None = None,
                     graph_index: int | None = None) -> str:
        """A fresh prefix for the node call in progress; each call draws the next graph index.

        Outside a node call (scripts, unit tests) the defaults are an empty root, call 0 and graph 0.
        """
        scope = current_scope()
        default_graph = scope.next_graph_index() if scope is not None else 0
        if root is None:
            root = scope.node_id if scope is not None else ""
        if call_index is None:
            call_index = scope.call_index if scope is not None else 0
        if graph_index is None:
            graph_index = default_graph
        return f"{root}.{call_index}.{graph_index}."

    def node(self, class_type: str, id: str | None = None, **inputs: Any) -> Node:
        """Add a node (or return the one already under that id, unchanged)."""
        if id is None:
            id = str(self.id_gen)
            self.id_gen += 1
        full_id = self.prefix + id
        existing = self.nodes.get(full_id)
        if existing is not None:
            return existing
        created = Node(full_id, class_type, inputs)
        self.nodes[full_id] = created
        return created

    def lookup_node(self, id: str) -> Node | None:
        return self.nodes.get(self.prefix + id)

    def finalize(self) -> dict[str, dict[str, Any]]:
        return {node_id: node.serialize() for node_id, node in self.nodes.items()}

    def replace_node_output(self, node_id: str, index: int, new_value: Any) -> None:
        """Point every input linked to output `index` of `node_id` at `new_value`; None disconnects them."""
        target = self.prefix + node_id
        for node in self.nodes.values():
            linked = [key for key, value in node.inputs.items()
                      if is_link(value) and value[0] == target and value[1] == index]
            for key in linked:
                node.set_input(key, new_value)

    def remove_node(self, id: str) -> None:
        """Drop a node; KeyError if there is none under that id."""
        del self.nodes[self.prefix + id]


def add_graph_prefix(graph: Mapping[str, Mapping[str, Any]], outputs: Sequence[Any],
                     prefix: str) -> tuple[dict[str, dict[str, Any]], tuple[Any, ...]]:
    """Prefix every node id of `graph`, the links between its nodes and the links in `outputs`."""

    def relink(value: Any) -> Any:
        return [prefix + value[0], value[1]] if is_link(value) else value

    new_graph: dict[str, dict[str, Any]] = {}
    for node_id, node in graph.items():
        inputs = {name: relink(value) for name, value in (node.get("inputs") or {}).items()}
        new_graph[prefix + node_id] = {**node, "inputs": inputs}
    return new_graph, tuple(relink(output) for output in outputs)
