"""class_type -> node class, with the display names, packs and web directories that came with them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from partyflow.nodes.protocol import NodeDefinition, NodeDefinitionError, define


@dataclass(frozen=True)
class RegisteredNode:
    class_type: str
    cls: type
    display_name: str | None
    pack: str
    python_module: str


class NodeRegistry:
    """The node classes one engine knows; later registrations of a class_type override earlier ones, as in ComfyUI."""

    def __init__(self) -> None:
        self._nodes: dict[str, RegisteredNode] = {}
        self.web_directories: dict[str, Path] = {}
        self.overrides: list[tuple[str, str, str]] = []  # (class_type, old pack, new pack)

    def register(self, class_type: str, cls: type, *, display_name: str | None = None, pack: str = "",
                 python_module: str = "nodes") -> None:
        if not isinstance(class_type, str) or not class_type:
            raise NodeDefinitionError(str(class_type), "class_type must be a non-empty string")
        if not isinstance(cls, type):
            raise NodeDefinitionError(class_type, f"NODE_CLASS_MAPPINGS must map to classes, got {type(cls).__name__}")
        previous = self._nodes.get(class_type)
        if previous is not None and previous.pack != pack:
            self.overrides.append((class_type, previous.pack, pack))
        self._nodes[class_type] = RegisteredNode(class_type, cls, display_name, pack, python_module)

    def register_mappings(self, mappings: Mapping[str, Any], display_names: Mapping[str, Any] | None = None, *,
                          pack: str, python_module: str) -> list[str]:
        """Register a pack's NODE_CLASS_MAPPINGS; returns the class_types added."""
        if not isinstance(mappings, Mapping):
            raise NodeDefinitionError(pack, "NODE_CLASS_MAPPINGS must be a dict of class_type -> class")
        names = display_names if isinstance(display_names, Mapping) else {}
        for class_type, cls in mappings.items():
            title = names.get(class_type)
            self.register(class_type, cls, display_name=str(title) if title else None, pack=pack,
                          python_module=python_module)
        return list(mappings)

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def entry(self, class_type: str) -> RegisteredNode:
        return self._nodes[class_type]

    def mappings(self) -> dict[str, type]:
        """A NODE_CLASS_MAPPINGS-like view (what ComfyUI's `nodes` module exposes)."""
        return {name: node.cls for name, node in self._nodes.items()}

    def display_names(self) -> dict[str, str]:
        return {name: node.display_name for name, node in self._nodes.items() if node.display_name}

    def definition(self, class_type: str) -> NodeDefinition:
        """Read the class afresh (INPUT_TYPES may list files that changed since the last call)."""
        node = self._nodes[class_type]
        return define(class_type, node.cls, display_name=node.display_name, python_module=node.python_module)

    def object_info(self, class_type: str | None = None) -> dict[str, dict[str, Any]]:
        """GET /object_info: every class, skipping (and not failing on) classes whose INPUT_TYPES is broken."""
        names = [class_type] if class_type is not None else list(self._nodes)
        info: dict[str, dict[str, Any]] = {}
        for name in names:
            if name not in self._nodes:
                continue
            try:
                info[name] = self.definition(name).object_info()
            except NodeDefinitionError:
                continue
        return info

    def categories(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for name, node in self._nodes.items():
            grouped.setdefault(str(getattr(node.cls, "CATEGORY", "sd")), []).append(name)
        return grouped
