"""Node outputs kept across prompts, keyed by input signature.

A signature covers the class, its constant inputs, its IS_CHANGED value and, recursively, the signatures of
the nodes it reads from; equal signatures mean equal outputs, so a hit skips the node and all it needs.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol


class NodeResult(NamedTuple):
    """One node's outputs: a list of values per output slot (lists because of list mapping), and its ui.

    A named tuple: a run makes one per node, and it is the cheapest immutable record Python has.
    """

    outputs: tuple[list[Any], ...]
    ui: dict[str, Any] | None = None


class OutputCache(Protocol):
    """Where the executor keeps node results. A cache elsewhere (the Ray backend's shared one) may also offer
    `prefetch(keys)`: the executor then hands it every signature of the prompt before it asks for any."""

    def begin_prompt(self) -> None: ...
    def get(self, key: str) -> NodeResult | None: ...
    def put(self, key: str, value: NodeResult) -> None: ...
    def end_prompt(self, used: Iterable[str], *, unchanged: bool = False) -> None: ...
    def clear(self) -> None: ...


class NoCache:
    """Every prompt runs every node it needs."""

    def begin_prompt(self) -> None:
        return None

    def get(self, key: str) -> NodeResult | None:
        return None

    def put(self, key: str, value: NodeResult) -> None:
        return None

    def end_prompt(self, used: Iterable[str], *, unchanged: bool = False) -> None:
        return None

    def clear(self) -> None:
        return None

    def __len__(self) -> int:
        return 0


class ClassicCache:
    """ComfyUI's default: keep what the last prompt used or produced, drop the rest.

    Prompts may overlap (a workflow run as a tool inside another prompt): then what every overlapping prompt used
    is kept, and the pruning waits until the last of them ends, so a nested run never evicts its caller's results.
    """

    def __init__(self) -> None:
        self._entries: dict[str, NodeResult] = {}
        self._running = 0
        self._keep: set[str] = set()

    def begin_prompt(self) -> None:
        self._running += 1

    def get(self, key: str) -> NodeResult | None:
        return self._entries.get(key)

    def put(self, key: str, value: NodeResult) -> None:
        self._entries[key] = value

    def end_prompt(self, used: Iterable[str], *, unchanged: bool = False) -> None:
        """`unchanged`: the prompt only hit entries the previous one kept, so there is nothing to prune."""
        self._running = max(self._running - 1, 0)
        if unchanged and self._running == 0 and not self._keep:
            return
        self._keep.update(used)
        if self._running == 0:
            keep, self._keep = self._keep, set()
            self._entries = {k: v for k, v in self._entries.items() if k in keep}

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class LRUCache:
    """Keep the `capacity` most recently used outputs, across any number of prompts."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("an LRU cache needs a capacity of at least 1")
        self.capacity = capacity
        self._entries: OrderedDict[str, NodeResult] = OrderedDict()

    def get(self, key: str) -> NodeResult | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: NodeResult) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def begin_prompt(self) -> None:
        return None

    def end_prompt(self, used: Iterable[str], *, unchanged: bool = False) -> None:
        return None

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def make_cache(spec: str) -> OutputCache:
    """`none`, `classic` or `lru:N` (the `cache` setting)."""
    text = spec.strip().lower()
    if text == "none":
        return NoCache()
    if text == "classic":
        return ClassicCache()
    if text.startswith("lru:") and text[4:].isdigit() and int(text[4:]) > 0:
        return LRUCache(int(text[4:]))
    raise ValueError(f"unknown cache strategy {spec!r}: use 'none', 'classic' or 'lru:N' (N > 0)")


def fingerprint(value: Any) -> str:
    """A stable text form of a constant input; values with no stable form never match a cached one."""
    if isinstance(value, float) and math.isnan(value):
        return f"nan:{uuid.uuid4().hex}"  # NaN never equals itself: always re-execute
    if value is None or isinstance(value, (str, int, float, bool)):
        return repr(value)
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return f"object:{type(value).__qualname__}:{uuid.uuid4().hex}"


def signature(parts: list[str]) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
