"""Typed progress events of one prompt's execution, and the sinks they are delivered to.

Each event knows its ComfyUI WebSocket name and payload (`to_message`), so the server only forwards them.
Sinks are plain callables; the executor calls them on its event-loop thread, in order.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

logger = logging.getLogger("partyflow.events")


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"
    prompt_id: str

    def to_message(self) -> dict[str, Any]:
        """The `{"type", "data"}` frame ComfyUI's WebSocket sends for this event (values shared, not copied)."""
        return {"type": self.type, "data": {f.name: getattr(self, f.name) for f in fields(self)}}


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class ExecutionStart(Event):
    type: ClassVar[str] = "execution_start"
    timestamp: int = field(default_factory=_now_ms)


@dataclass(frozen=True)
class ExecutionCached(Event):
    type: ClassVar[str] = "execution_cached"
    nodes: list[str] = field(default_factory=list)
    timestamp: int = field(default_factory=_now_ms)


@dataclass(frozen=True)
class Executing(Event):
    type: ClassVar[str] = "executing"
    node: str | None = None
    display_node: str | None = None


@dataclass(frozen=True)
class Progress(Event):
    type: ClassVar[str] = "progress"
    node: str = ""
    value: float = 0
    max: float = 0


@dataclass(frozen=True)
class Executed(Event):
    """A node finished; `output` is its `ui` dict (ComfyUI sends this message only for nodes that have one)."""

    type: ClassVar[str] = "executed"
    node: str = ""
    display_node: str = ""
    output: dict[str, Any] | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class ExecutionError(Event):
    type: ClassVar[str] = "execution_error"
    node_id: str = ""
    node_type: str = ""
    executed: list[str] = field(default_factory=list)
    exception_message: str = ""
    exception_type: str = ""
    traceback: list[str] = field(default_factory=list)
    current_inputs: dict[str, list[Any]] = field(default_factory=dict)  # the failing node's inputs, per input a list
    current_outputs: list[str] = field(default_factory=list)  # the nodes whose outputs exist (ComfyUI: a list of ids)
    timestamp: int = field(default_factory=_now_ms)


@dataclass(frozen=True)
class ExecutionInterrupted(Event):
    type: ClassVar[str] = "execution_interrupted"
    node_id: str | None = None
    node_type: str | None = None
    executed: list[str] = field(default_factory=list)
    timestamp: int = field(default_factory=_now_ms)


@dataclass(frozen=True)
class ExecutionSuccess(Event):
    type: ClassVar[str] = "execution_success"
    timestamp: int = field(default_factory=_now_ms)


@dataclass(frozen=True)
class CustomMessage(Event):
    """A pack's own message (`PromptServer.instance.send_sync(event, data)`), forwarded as-is."""

    type: ClassVar[str] = "custom"
    event: str = ""
    data: Any = None
    client_id: str | None = None

    def to_message(self) -> dict[str, Any]:
        return {"type": self.event, "data": self.data}


EventSink = Callable[[Event], None]


class EventBus:
    """Fans events out to sinks; a failing sink is logged and never breaks execution.

    A sink may declare `wants` (a collection of Event classes) to receive only those; the executor then skips
    building per-node events nobody wants, which matters on graphs of thousands of trivial nodes.
    """

    def __init__(self, sinks: Sequence[EventSink] = ()) -> None:
        self._sinks: list[EventSink] = list(sinks)

    def wants(self, event_type: type[Event]) -> bool:
        for sink in self._sinks:
            wanted = getattr(sink, "wants", None)
            if wanted is None or event_type in wanted:
                return True
        return False

    def subscribe(self, sink: EventSink) -> Callable[[], None]:
        self._sinks.append(sink)
        return lambda: self._sinks.remove(sink) if sink in self._sinks else None

    def with_sinks(self, extra: Sequence[EventSink]) -> EventBus:
        return EventBus([*self._sinks, *extra])

    def emit(self, event: Event) -> None:
        for sink in tuple(self._sinks):
            wanted = getattr(sink, "wants", None)
            if wanted is not None and type(event) not in wanted:
                continue
            try:
                sink(event)
            except Exception:
                logger.exception("event sink %r failed on %s", sink, event.type)

    def __bool__(self) -> bool:
        return bool(self._sinks)


class EventStream:
    """A bus's events as an async iterator, subscribed from creation so nothing is missed before iterating."""

    def __init__(self, bus: EventBus) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._unsubscribe = bus.subscribe(self._put)

    def _put(self, event: Event) -> None:
        if threading.get_ident() == self._thread:
            self._queue.put_nowait(event)
        else:  # custom messages may come from node threads
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        return await self._queue.get()

    def close(self) -> None:
        self._unsubscribe()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
