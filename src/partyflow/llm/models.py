"""The model manager: local models loaded on first use and kept within a memory budget.

Loading a local model takes seconds and holds its weights in memory, so providers that share a manager share
loaded models, and the least recently used ones are dropped when a new one would not fit. Sizes are estimated
before loading from the safetensors headers (parameter count times the element size of the dtype it will be
loaded in) so room is made first, then corrected from the loaded object's own `nbytes` when it has one.

The manager knows nothing of torch: it holds whatever a loader returns. An unloaded model's memory is reclaimed
when the last reference goes, so a generation in flight finishes on the model it started with.
"""

from __future__ import annotations

import json
import os
import re
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from partyflow.config import ConfigError

T = TypeVar("T")

DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1}
BUDGET_ENV = "PARTYFLOW_MODELS__MEMORY_BUDGET"
FALLBACK_BUDGET = 4 * 1024**3  # when the machine's memory cannot be read


@dataclass(frozen=True)
class LoadedModelInfo:
    """What the manager holds, for reports such as the server's system stats; `last_used` is a Unix time."""

    name: str
    path: Path
    bytes: int
    last_used: float


@dataclass
class _Entry:
    name: str
    path: Path
    model: Any
    bytes: int
    last_used: float


class ModelManager:
    """Loads models on first use and unloads the least recently used ones to stay within `budget_bytes`.

    A model larger than the whole budget is still loaded when asked for (everything else is unloaded first):
    refusing would make the budget a hard failure rather than a cache limit.
    """

    def __init__(self, budget_bytes: int, *, clock: Callable[[], float] = time.time) -> None:
        if budget_bytes <= 0:
            raise ValueError("the memory budget must be a positive number of bytes")
        self.budget_bytes = budget_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._loading: dict[str, threading.Lock] = {}

    def get(self, name: str, path: Path, loader: Callable[[Path], T], *, estimate_bytes: int | None = None,
            variant: str = "") -> T:
        """The model in `path`, loading it with `loader` when it is not loaded (`variant` tells apart loads of
        one folder with different settings, such as device and dtype)."""
        key = f"{Path(path).resolve()}|{variant}"
        with self._lock:
            if (hit := self._touch(key)) is not None:
                return hit
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one load per model at a time; other models stay usable meanwhile
            with self._lock:
                if (hit := self._touch(key)) is not None:
                    return hit
                self._make_room(estimate_bytes or 0, keep=None)
            model = loader(Path(path))
            size = getattr(model, "nbytes", None)
            with self._lock:
                self._entries[key] = _Entry(name, Path(path), model,
                                            size if isinstance(size, int) else estimate_bytes or 0, self._clock())
                self._make_room(0, keep=key)
                self._loading.pop(key, None)
            return model

    def loaded(self) -> list[LoadedModelInfo]:
        """The loaded models, most recently used first."""
        with self._lock:
            return [LoadedModelInfo(e.name, e.path, e.bytes, e.last_used) for e in reversed(self._entries.values())]

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return self._used()

    def unload(self, name: str) -> bool:
        """Drop every loaded model called `name`; whether there was one."""
        with self._lock:
            keys = [key for key, entry in self._entries.items() if entry.name == name]
            for key in keys:
                del self._entries[key]
            return bool(keys)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _touch(self, key: str) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        entry.last_used = self._clock()
        self._entries.move_to_end(key)
        return entry.model

    def _used(self) -> int:
        return sum(entry.bytes for entry in self._entries.values())

    def _make_room(self, incoming: int, keep: str | None) -> None:
        while self._used() + incoming > self.budget_bytes:
            victim = next((key for key in self._entries if key != keep), None)
            if victim is None:
                return
            del self._entries[victim]


def parameter_count(folder: Path) -> int | None:
    """Parameters in a folder's safetensors files, read from their headers only; None without such files."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    return sum(_tensor_elements(file) for file in files)


def estimate_bytes(folder: Path, dtype: str) -> int | None:
    """Memory the weights will take once loaded as `dtype`: parameter count times element size."""
    count = parameter_count(folder)
    return None if count is None else count * DTYPE_BYTES.get(dtype, 4)


def _tensor_elements(file: Path) -> int:
    """A safetensors file starts with an 8-byte little-endian length and a JSON header of shapes."""
    with file.open("rb") as stream:
        (length,) = struct.unpack("<Q", stream.read(8))
        header = json.loads(stream.read(length))
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        elements = 1
        for dim in info["shape"]:
            elements *= dim
        total += elements
    return total


# --- the memory budget (issue 3, item 4) -------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(value: int | float | str) -> int:
    """Bytes from a number or text such as "8GB", "512 MiB" or "4g".

    "KB/MB/GB/TB" are powers of 1000 and "KiB/MiB/GiB/TiB" powers of 1024, as the units say; a bare letter
    ("8g", "512M") is read as 1024-based, the way Docker and Java memory flags are, which is what people who
    write it mean. Raises ValueError with the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int | float):
        return int(value)
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a size; write bytes (8000000000) or a number with a unit "
                         "(8GB, 8GiB, 8g, 512MB)")
    number, letter, binary, b = match.groups()
    base = 1024 if binary or (letter and not b) else 1000
    return int(float(number) * base ** _POWERS[letter.lower()])


def memory_budget(raw_config: Mapping[str, object], environ: Mapping[str, str] | None = None) -> int:
    """The model manager's budget: $PARTYFLOW_MODELS__MEMORY_BUDGET, else config.toml's `[models]
    memory_budget`, else half of the machine's memory (the other half is left to the OS and everything else).

    Raises `partyflow.config.ConfigError` naming the setting when the value is not a positive size.
    """
    env = os.environ if environ is None else environ
    table = raw_config.get("models", {})
    configured = env.get(BUDGET_ENV) or (table.get("memory_budget") if isinstance(table, Mapping) else None)
    where = BUDGET_ENV if env.get(BUDGET_ENV) else "[models] memory_budget in config.toml"
    if configured is None:
        return default_budget()
    try:
        budget = parse_size(configured)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if budget <= 0:
        raise ConfigError(f"{where} must be a positive size, got {configured!r}")
    return budget


def default_budget() -> int:
    """Half of the machine's physical memory; a fixed fallback where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return FALLBACK_BUDGET
