"""ComfyUI's `comfy_execution.graph_utils`: partyflow's GraphBuilder under ComfyUI's name."""

from __future__ import annotations

from partyflow.nodes.graph_builder import GraphBuilder, Node, add_graph_prefix, is_link
from partyflow.nodes.values import ExecutionBlocker

__all__ = ["ExecutionBlocker", "GraphBuilder", "Node", "add_graph_prefix", "is_link"]
