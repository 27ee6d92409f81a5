"""ComfyUI's `nodes` module: the running engine's node classes, read live from its registry.

`NODE_CLASS_MAPPINGS` and `NODE_DISPLAY_NAME_MAPPINGS` are read-only views that read `current_host()` at
each access (so a pack may import them at module level), and a registered class can be
imported by its class_type (`from nodes import SaveImage` works where such a node is registered).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from partyflow.nodes.comfy_compat.comfy import model_management
from partyflow.nodes.host import current_host, current_host_or_none
from partyflow.nodes.registry import NodeRegistry

__all__ = [
    "MAX_RESOLUTION", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "before_node_execution",
    "interrupt_processing",
]

MAX_RESOLUTION = 16384


class _ClassMappings(Mapping[str, type]):
    """class_type -> class of the engine importing or running the caller, as it is at each access."""

    def _registry(self) -> NodeRegistry:
        return current_host().registry

    def __getitem__(self, class_type: str) -> type:
        registry = self._registry()
        if class_type not in registry:
            raise KeyError(class_type)
        return registry.entry(class_type).cls

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._registry()))

    def __len__(self) -> int:
        return len(self._registry())

    def __repr__(self) -> str:
        return f"NODE_CLASS_MAPPINGS({sorted(self)!r})"


class _DisplayNames(Mapping[str, str]):
    """class_type -> display name, for the classes that declared one."""

    def _names(self) -> dict[str, str]:
        return current_host().registry.display_names()

    def __getitem__(self, class_type: str) -> str:
        return self._names()[class_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return f"NODE_DISPLAY_NAME_MAPPINGS({self._names()!r})"


NODE_CLASS_MAPPINGS: Mapping[str, type] = _ClassMappings()
NODE_DISPLAY_NAME_MAPPINGS: Mapping[str, str] = _DisplayNames()


def before_node_execution() -> None:
    model_management.throw_exception_if_processing_interrupted()


def interrupt_processing(value: bool = True) -> None:
    model_management.interrupt_current_processing(value)


def __getattr__(name: str) -> Any:
    """`EXTENSION_WEB_DIRS`, and registered node classes by class_type."""
    host = current_host_or_none()
    if host is None or name.startswith("__"):
        raise AttributeError(f"module 'nodes' has no attribute {name!r}")
    if name == "EXTENSION_WEB_DIRS":
        return {pack: str(path) for pack, path in host.registry.web_directories.items()}
    if name in host.registry:
        return host.registry.entry(name).cls
    raise AttributeError(f"module 'nodes' has no attribute {name!r} (no node class of that name is registered)")
