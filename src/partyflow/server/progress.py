"""What one running prompt tells its WebSocket client: ComfyUI's messages, plus `progress_state`, kept bounded.

The editor (frontend 1.58) highlights running nodes and counts active jobs from `progress_state` messages, so each
prompt keeps a per-node state table and sends it as the state changes. Two things keep a long loop from flooding a
browser (issue 11: 3,000 passes dropped the socket, 10,000 never showed a result):

- the table is keyed by *display* node (the prompt's own nodes; a loop's expanded copies show on the node they copy),
  so `progress_state` never grows with the number of passes — ComfyUI keys it by every expanded node it ever ran;
- messages about expanded nodes (`executing`, `progress`, `executed` of a copy) and `progress_state` itself are
  coalesced: the latest per key waits at most `interval` seconds, and everything waiting is sent, in order, before
  any other message of the prompt. Messages about the prompt's own nodes keep ComfyUI's one-per-event rhythm.

Runs on the server's event loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from partyflow.engine.events import (
    Event,
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    Progress,
)

Send = Callable[[dict[str, Any]], None]
_STATE_KEY = "progress_state"


class PromptStream:
    """The messages of one prompt to one client (or to everyone, when it was queued without a client id)."""

    def __init__(self, prompt_id: str, send: Send, loop: asyncio.AbstractEventLoop, *, interval: float = 0.1) -> None:
        self.prompt_id = prompt_id
        self._send = send
        self._loop = loop
        self.interval = interval
        self._nodes: dict[str, dict[str, Any]] = {}
        self._waiting: dict[str, dict[str, Any] | None] = {}  # key -> message (None: build progress_state at send)
        self._timer: asyncio.TimerHandle | None = None

    # ---- events --------------------------------------------------------------------------------------------

    def handle(self, event: Event, message: dict[str, Any] | None) -> None:
        """Send (or hold back) `message`, the wire form of `event`; None when the event has no message of its own."""
        if isinstance(event, ExecutionStart):
            self._nodes.clear()
        elif isinstance(event, ExecutionCached):
            for node in event.nodes:
                self._set(node, "finished")
        elif isinstance(event, Executing) and event.node is not None:
            self._set(event.display_node or event.node, "running", value=0.0, maximum=1.0)
            if self._expanded(event.node, event.display_node):
                self._hold("executing", message)
                return
        elif isinstance(event, Progress):
            self._set(event.node, "running", value=float(event.value), maximum=float(event.max))
        elif isinstance(event, Executed):
            self._set(event.display_node or event.node, "finished")
            if message is not None and self._expanded(event.node, event.display_node):
                self._hold(f"executed:{event.display_node}", message)
                return
        elif isinstance(event, ExecutionError):
            for node, state in self._nodes.items():
                if state["state"] == "running":
                    state["state"] = "error" if node == event.node_id else "finished"
        elif isinstance(event, (ExecutionSuccess, ExecutionInterrupted)):
            for state in self._nodes.values():
                if state["state"] == "running":
                    state["state"] = "finished"
        final = isinstance(event, (ExecutionSuccess, ExecutionError, ExecutionInterrupted))
        if final:
            self._waiting[_STATE_KEY] = None  # the final table goes out before the end message
        if message is None:
            return
        if final:
            self.flush()
        elif not isinstance(event, Progress):  # a progress bar's update may overtake held messages; nothing else may
            self.flush(state=False)
        self._send(message)

    def flush(self, *, state: bool = True) -> None:
        """Send everything held back, oldest key first; with `state=False` the state table keeps waiting for its
        timer (it is sent at most once per interval however fast nodes run)."""
        waiting = self._waiting
        held_state = _STATE_KEY in waiting and not state
        if held_state:
            waiting.pop(_STATE_KEY)
        elif self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting = {_STATE_KEY: None} if held_state else {}
        for key, message in waiting.items():
            self._send(self.state_message() if key == _STATE_KEY else message)  # type: ignore[arg-type]

    def state_message(self) -> dict[str, Any]:
        return {"type": "progress_state", "data": {"prompt_id": self.prompt_id,
                                                   "nodes": {n: dict(s) for n, s in self._nodes.items()}}}

    # ---- helpers --------------------------------------------------------------------------------------------

    def _set(self, node: str, state: str, *, value: float | None = None, maximum: float | None = None) -> None:
        entry = self._nodes.get(node)
        if entry is None:
            entry = self._nodes[node] = {"value": 0.0, "max": 1.0, "state": state, "node_id": node,
                                         "prompt_id": self.prompt_id, "display_node_id": node,
                                         "parent_node_id": None, "real_node_id": node}
        entry["state"] = state
        if value is not None:
            entry["value"] = value
        if maximum is not None:
            entry["max"] = maximum
        if state == "finished":
            entry["value"] = entry["max"]
        self._hold(_STATE_KEY, None)

    def _hold(self, key: str, message: dict[str, Any] | None) -> None:
        self._waiting.pop(key, None)  # the newest goes last, after what was held meanwhile
        self._waiting[key] = message
        if self._timer is None:
            self._timer = self._loop.call_later(self.interval, self.flush)

    @staticmethod
    def _expanded(node: str, display: str | None) -> bool:
        return bool(display) and node != display

    def close(self) -> None:
        """The prompt is over: send what waits and stop the timer."""
        self.flush()

