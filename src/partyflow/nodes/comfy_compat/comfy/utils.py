"""ComfyUI's `comfy.utils`, torch-free: the progress bar nodes report through.

The torch helpers of the real module (`common_upscale`, `load_torch_file`, ...) are not offered; asking for
one raises AttributeError saying so, instead of importing torch behind the pack's back.
"""

from __future__ import annotations

from typing import Any

from partyflow.nodes.host import NodeScope, current_scope

__all__ = ["PROGRESS_BAR_ENABLED", "ProgressBar"]

PROGRESS_BAR_ENABLED = True


class ProgressBar:
    """Progress of the node call that created it, reported as `(value, total, preview)` to its scope.

    The scope is captured at construction so that worker threads a node starts can update the bar; outside a
    node call the bar only counts.
    """

    def __init__(self, total: int | float, node_id: str | None = None) -> None:
        self.total = total
        self.current: int | float = 0
        self.node_id = node_id
        self._scope: NodeScope | None = current_scope()

    def update_absolute(self, value: int | float, total: int | float | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total)
        scope = self._scope or current_scope()
        if scope is not None:
            scope.report_progress(self.current, self.total, preview)

    def update(self, value: int | float) -> None:
        """Advance by `value` steps."""
        self.update_absolute(self.current + value)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise AttributeError(f"comfy.utils.{name} is part of ComfyUI's torch-based core, which partyflow does not "
                         "provide; only ProgressBar and PROGRESS_BAR_ENABLED are available here")
