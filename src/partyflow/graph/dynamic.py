"""The live prompt of one execution: the submitted nodes plus the ones node expansion adds while it runs.

Nodes that build loops read it through the hidden `DYNPROMPT` input, as in ComfyUI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class NodeNotFoundError(KeyError):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.node_id = node_id

    def __str__(self) -> str:
        return f"node {self.node_id!r} is not in the prompt"


class DynamicPrompt:
    """Original nodes are read-only; ephemeral ones remember the node that expanded them."""

    def __init__(self, original: Mapping[str, Mapping[str, Any]]) -> None:
        self._original = original
        self._ephemeral: dict[str, Mapping[str, Any]] = {}
        self._parents: dict[str, str] = {}
        self._display: dict[str, str] = {}

    def get_node(self, node_id: str) -> Mapping[str, Any]:
        node = self._ephemeral.get(node_id)
        if node is None:
            node = self._original.get(node_id)
        if node is None:
            raise NodeNotFoundError(node_id)
        return node

    def has_node(self, node_id: str) -> bool:
        return node_id in self._ephemeral or node_id in self._original

    def is_ephemeral(self, node_id: str) -> bool:
        return node_id in self._ephemeral

    def add_ephemeral_node(self, node_id: str, node_info: Mapping[str, Any], parent_id: str, display_id: str) -> None:
        self._ephemeral[node_id] = node_info
        self._parents[node_id] = parent_id
        self._display[node_id] = display_id

    def get_parent_node_id(self, node_id: str) -> str | None:
        return self._parents.get(node_id)

    def get_real_node_id(self, node_id: str) -> str:
        while node_id in self._parents:
            node_id = self._parents[node_id]
        return node_id

    def get_display_node_id(self, node_id: str) -> str:
        return self._display.get(node_id, node_id)

    def all_node_ids(self) -> set[str]:
        return set(self._original) | set(self._ephemeral)

    def get_original_prompt(self) -> Mapping[str, Mapping[str, Any]]:
        return self._original
