"""`DriverProcessBackend`: the Ray backend with Ray's driver in a child process (`[engine] ray_driver = "process"`).

Ray ends a driver process whose head has been unreachable for a while (`ray_head_timeout_s`). So that the head
going away costs the server nothing, the server never joins the cluster itself: a child (`partyflow.distributed.
agent`) does, and this backend forwards prompts, events, interrupts and status over its pipes. When the child
reports the cluster gone, or exits, the server says so (`GET /partyflow/backend`, `partyflow_ray_up` on /metrics,
one log line), every prompt in flight waits, claimed but unfinished in the durable queue, and a new child is
started with backoff until the cluster answers; those prompts then run again from the start and are recorded
once, by the dispatcher, like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from partyflow.distributed.backend import BackendUnavailable
from partyflow.distributed.ray_backend import _Worker
from partyflow.distributed.results import failed, from_wire
from partyflow.distributed.settings import BackendSettings
from partyflow.distributed.wire import frame, read_frame

if TYPE_CHECKING:
    from partyflow.engine.engine import Engine, RunResult
    from partyflow.engine.events import EventSink
    from partyflow.engine.queue import QueueItem

logger = logging.getLogger("partyflow.distributed")

_RECONNECT_DELAYS = (0.5, 1, 2, 5)
_STATUS_TIMEOUT_S = 30.0
_CLOSE_TIMEOUT_S = 30.0


class DriverLost(ConnectionError):
    """The driver process ended (the cluster went away, or the driver crashed) while a call was waiting."""


@dataclass
class _Call:
    emit: EventSink | None
    prompt_id: str | None
    future: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class DriverProcessBackend:
    name = "ray"

    def __init__(self, engine: Engine | str, settings: BackendSettings) -> None:
        self.settings = settings
        self.max_in_flight = settings.max_in_flight
        self.home = settings.worker_home or (engine if isinstance(engine, str) else str(engine.home.root))
        self.healthy = False
        self.last_error: str | None = None
        self.retried = 0
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._calls: dict[int, _Call] = {}
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._workers: list[_Worker] = []
        self._models: list[tuple[str, str]] = []
        self._closing = False
        self._was_up = False
        self._reviver: asyncio.Task[None] | None = None

    # ---- the child ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        async with self._lock:
            if not self.healthy:
                await self._spawn()

    async def _spawn(self) -> None:
        env = {**os.environ, "RAY_gcs_rpc_server_reconnect_timeout_s": str(int(self.settings.head_timeout_s))}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "partyflow.distributed.agent", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=env, limit=2**26)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(frame(("init", self.home, self.settings)))
            first = await read_frame(proc.stdout)
        except BaseException:  # cancelled (the server is stopping): no driver may outlive it
            proc.kill()
            await asyncio.shield(proc.wait())
            raise
        if first is None or first[0] != "started":
            code = await proc.wait()
            reason = first[1] if first and first[0] == "unavailable" else \
                f"the Ray driver process exited with status {code} before it started (see the log)"
            raise BackendUnavailable(reason)
        if self._was_up:
            self.restarts += 1
            logger.warning("Ray cluster at %s is back; resuming", self.settings.ray_address)
        self._proc, self._was_up = proc, True
        self.healthy, self.last_error = True, None
        self._reader = asyncio.create_task(self._read(proc), name="partyflow-ray-driver")

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        reason = None
        while (message := await read_frame(proc.stdout)) is not None:
            reason = self._on_message(message) or reason
        code = await proc.wait()
        if self._proc is proc:
            self._lost(reason or f"Ray cluster at {self.settings.ray_address} unreachable (the Ray driver process "
                                 f"exited with status {code})")

    def _on_message(self, message: tuple[Any, ...]) -> str | None:
        op = message[0]
        if op == "event":
            call = self._calls.get(message[1])
            if call is not None and call.emit is not None:
                call.emit(message[2])
        elif op in ("result", "status", "error"):
            call = self._calls.get(message[1])
            if call is not None and not call.future.done():
                call.future.set_result(message)
        elif op == "workers":
            _, snapshot, models, retried = message
            self._workers = [_Worker(id=w[0], handle=None, running=set(w[1]), failures=w[2], done=w[3],
                                     failed=w[4], cache_hits=w[5]) for w in snapshot]
            self._models = [tuple(m) for m in models]
            self.retried = retried
        elif op == "down":
            return f"Ray cluster at {self.settings.ray_address} unreachable: {message[1]}"
        return None

    def _lost(self, reason: str) -> None:
        self._proc = None
        if self._closing:
            return
        if self.healthy:
            logger.error("%s; prompts wait in the queue and resume when it is back", reason)
        self.healthy, self.last_error = False, reason
        for call in self._calls.values():
            if not call.future.done():
                call.future.set_exception(DriverLost(reason))
        if self._reviver is None or self._reviver.done():  # back as soon as the head is, prompts waiting or not
            self._reviver = asyncio.create_task(self._reconnect(), name="partyflow-ray-reconnect")

    async def _reconnect(self) -> None:
        """Until a new driver process reaches the cluster; every waiting prompt waits here, the first one in
        starts the driver and the others find it healthy."""
        for attempt in itertools.count():
            async with self._lock:
                if self.healthy or self._closing:
                    return
                try:
                    await self._spawn()
                    return
                except BackendUnavailable as exc:
                    self.last_error = str(exc)
            await asyncio.sleep(_RECONNECT_DELAYS[min(attempt, len(_RECONNECT_DELAYS) - 1)])  # backoff

    def _send(self, message: Any) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            raise DriverLost(self.last_error or "the Ray driver process is not running")
        proc.stdin.write(frame(message))

    async def _call(self, message_for: Any, emit: EventSink | None = None, prompt_id: str | None = None,
                    timeout: float | None = None) -> tuple[Any, ...]:
        rid = next(self._ids)
        call = self._calls[rid] = _Call(emit, prompt_id)
        try:
            self._send(message_for(rid))
            return await asyncio.wait_for(call.future, timeout)
        except asyncio.CancelledError:
            with contextlib.suppress(DriverLost):
                self._send(("cancel", rid))
            raise
        finally:
            self._calls.pop(rid, None)

    # ---- the backend -------------------------------------------------------------------------------------------

    async def run(self, item: QueueItem, emit: EventSink) -> RunResult:
        wire_item = (item.number, item.prompt_id, item.prompt, item.extra_data, item.outputs_to_execute)
        while True:
            if not self.healthy:
                await self._reconnect()
            if self._closing:  # the server stops before the cluster is back: wait to be cancelled, unrecorded
                await asyncio.get_running_loop().create_future()
            try:
                reply = await self._call(lambda rid: ("run", rid, wire_item), emit, item.prompt_id)
            except DriverLost:
                continue  # the cluster went away mid-prompt: it runs again when the cluster is back
            if reply[0] == "error":
                return failed(item.prompt_id, reply[2], reply[3])
            return from_wire(reply[2])

    def interrupt(self, prompt_id: str | None = None) -> bool:
        hit = any(c.prompt_id is not None and (prompt_id is None or c.prompt_id == prompt_id)
                  for c in self._calls.values())
        if hit:
            with contextlib.suppress(DriverLost):
                self._send(("interrupt", prompt_id))
        return hit

    async def status(self) -> dict[str, Any]:
        driver = {"mode": "process", "pid": self._proc.pid if self._proc else None, "restarts": self.restarts}
        if self.healthy:
            try:
                reply = await self._call(lambda rid: ("status", rid), timeout=_STATUS_TIMEOUT_S)
                return {**reply[2], "driver": driver}
            except (DriverLost, TimeoutError):
                pass
        return {"backend": "ray", "address": self.settings.ray_address, "healthy": False,
                "last_error": self.last_error, "retried": self.retried, "driver": driver,
                "workers": [{"id": w.id, "alive": False, "error": "the Ray cluster is unreachable"}
                            for w in self._workers], "node_actors": [], "model_actors": []}

    def workers_snapshot(self) -> list[_Worker]:
        return list(self._workers)

    def loaded_model_actors(self) -> list[tuple[str, str]]:
        return list(self._models)

    async def close(self) -> None:
        self._closing = True
        if self._reviver is not None:
            self._reviver.cancel()
            await asyncio.gather(self._reviver, return_exceptions=True)
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(DriverLost, ConnectionError):
            self._send(("close",))
        try:
            await asyncio.wait_for(proc.wait(), _CLOSE_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        self._proc, self.healthy = None, False
