"""A pack that rewrites a counter file without a lock, relying on ComfyUI running one node at a time.

Each call reads the file, waits a moment (as real work would), and writes the value plus one; two overlapping
calls lose an increment. It also records how many of its calls ran at once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import folder_paths

_state = {"running": 0, "peak": 0}
_guard = threading.Lock()  # only for the test's bookkeeping, not for the counter file


class BumpCounter:
    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"tag": ("INT", {"default": 0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "bump"
    CATEGORY = "counter"

    def bump(self, tag: int):
        with _guard:
            _state["running"] += 1
            _state["peak"] = max(_state["peak"], _state["running"])
        try:
            path = Path(folder_paths.get_output_directory()) / "counter.txt"
            value = int(path.read_text()) if path.exists() else 0
            time.sleep(0.06)
            path.write_text(str(value + 1))
            return (value + 1,)
        finally:
            with _guard:
                _state["running"] -= 1


class Peak:
    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"values": ("INT", {"forceInput": True})}}

    INPUT_IS_LIST = True
    RETURN_TYPES = ("INT",)
    FUNCTION = "peak"
    OUTPUT_NODE = True
    CATEGORY = "counter"

    def peak(self, values):
        return {"ui": {"peak": [_state["peak"]]}, "result": (_state["peak"],)}


def reset() -> None:
    _state.update(running=0, peak=0)


NODE_CLASS_MAPPINGS = {"BumpCounter": BumpCounter, "CounterPeak": Peak}
