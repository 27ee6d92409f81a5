"""The host's end of one isolated pack's worker process: start it, send requests, restart it after a crash.

One request is in flight per worker at a time (a lock covers the round trip), so calls into one isolated pack
are serialised; calls into different packs, or into in-process packs, still run concurrently. While a node call is
waiting, progress and custom messages the worker sends are handed to the caller, and an interrupt of the prompt is
forwarded once. A worker that dies turns the call in progress into a `WorkerCrashed` error naming the exit code
and the last lines it wrote to stderr; the next request starts a fresh worker.
"""

from __future__ import annotations

import collections
import io
import itertools
import logging
import os
import select
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from partyflow.nodes.comfy_compat.comfy.model_management import InterruptProcessingException
from partyflow.nodes.isolation.environment import ensure_partyflow_link
from partyflow.nodes.isolation.wire import ChannelClosed, dumps_named, loads_reported, read_frame, write_frame

__all__ = ["RemoteNodeError", "WorkerClient", "WorkerCrashed", "WorkerError"]

logger = logging.getLogger("partyflow.isolation")

EventHandler = Callable[[tuple[Any, ...]], None]
_POLL_S = 0.05   # how often a waiting call looks at its prompt's interrupt flag


class WorkerError(RuntimeError):
    """The worker could not be started or could not load the pack."""

    exception_type = "IsolatedWorkerError"


class WorkerCrashed(WorkerError):
    """The worker process died during a request; the next request starts a new one."""

    exception_type = "IsolatedWorkerCrashed"


class RemoteNodeError(Exception):
    """An exception raised by the pack's code in the worker, carried back with its type name and traceback."""

    def __init__(self, info: Mapping[str, Any], pack: str) -> None:
        self.exception_type = str(info.get("type") or "Exception")
        self.remote_traceback = str(info.get("traceback") or "")
        super().__init__(str(info.get("message") or info.get("name") or "error"))
        self.add_note(f"raised in the worker process of isolated pack {pack!r}:\n{self.remote_traceback}")


class WorkerClient:
    """Owns the worker process of one pack; thread-safe."""

    def __init__(self, pack: str, pack_path: Path, python: Path, home_root: Path, *, venv: Path,
                 timeout: float = 30.0, stderr_lines: int = 40) -> None:
        self.pack, self.pack_path, self.python = pack, pack_path, python
        self.home_root, self.venv, self.timeout = home_root, venv, timeout
        self.generation = 0
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._writer: io.BufferedWriter | None = None
        self._stderr_thread: threading.Thread | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        self._ids = itertools.count(1)
        self._released: list[int] = []

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Start the worker and load the pack; returns what it reports (classes, web directory)."""
        with self._lock:
            return self._start()

    def _start(self) -> dict[str, Any]:
        self._stop()
        if not self.python.exists():
            raise WorkerError(f"the virtual environment of isolated pack {self.pack!r} is missing ({self.venv}); "
                              f"reinstall the pack with 'partyflow nodes install ... --isolate' to rebuild it")
        ensure_partyflow_link(self.venv)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["PYTHONUNBUFFERED"] = "1"
        self._stderr_tail.clear()
        try:
            process = subprocess.Popen(
                [str(self.python), "-m", "partyflow.nodes.isolation.worker", str(self.pack_path),
                 str(self.home_root), str(self.timeout)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=env,
                cwd=self.home_root, start_new_session=True)
        except OSError as exc:
            raise WorkerError(f"cannot start the worker of isolated pack {self.pack!r}: {exc}") from exc
        self._process = process
        assert process.stdin is not None and process.stderr is not None
        self._writer = io.BufferedWriter(process.stdin)  # type: ignore[arg-type]
        self._stderr_thread = threading.Thread(target=self._drain_stderr, args=(process.stderr,), daemon=True,
                                               name=f"partyflow-isolated-stderr:{self.pack}")
        self._stderr_thread.start()
        self.generation += 1
        info = self._receive("loading the pack", None, None, None)
        if not info.get("ok"):
            self._stop()
            raise WorkerError(f"isolated pack {self.pack!r} failed to load in its environment: {info.get('error')}")
        return info

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if self._writer is not None:
                self._writer.close()  # EOF: the worker leaves its loop and exits
        except OSError:
            pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)

    def _drain_stderr(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self._stderr_tail.append(line)
            logger.info("[%s] %s", self.pack, line)
        stream.close()

    # --- requests --------------------------------------------------------------------------------------

    def new_instance_id(self) -> int:
        return next(self._ids)

    def release(self, instance_id: int) -> None:
        """Forget a node instance; sent with the next call (safe from a finalizer: only appends)."""
        self._released.append(instance_id)

    def request(self, request: dict[str, Any], *, values: Mapping[str, Any] | None = None, doing: str = "",
                on_event: EventHandler | None = None, interrupt: threading.Event | None = None) -> Any:
        """Send one request and wait for its answer; restarts a worker that died earlier."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()
            if request.get("op") == "call" and self._released:
                request = {**request, "release": self._released[:]}
                del self._released[:len(request["release"])]
            payload = dumps_named(request, values or {}, "input")
            try:
                assert self._writer is not None
                write_frame(self._writer, payload)
            except (BrokenPipeError, OSError, ValueError):
                raise self._crashed(doing) from None
            return self._receive(doing, on_event, interrupt, request)

    def _receive(self, doing: str, on_event: EventHandler | None, interrupt: threading.Event | None,
                 request: dict[str, Any] | None) -> Any:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout
        interrupted = False
        while True:
            if interrupt is not None:
                while not select.select([stream], [], [], _POLL_S)[0]:
                    if interrupt.is_set() and not interrupted:
                        interrupted = True
                        self._send_quietly({"op": "interrupt"})
            try:
                message = loads_reported(read_frame(stream), "returned")
            except (ChannelClosed, OSError):
                raise self._crashed(doing) from None
            kind = message[0]
            if kind == "ok":
                return message[1]
            if kind == "error":
                if request is None:  # the pack failed at start-up
                    self._stop()
                    raise WorkerError(f"isolated pack {self.pack!r} could not start: {message[1].get('message')}")
                if message[1].get("name") == "InterruptProcessingException":  # the prompt was interrupted
                    raise InterruptProcessingException()
                raise RemoteNodeError(message[1], self.pack)
            if on_event is not None:
                on_event(message)

    def _send_quietly(self, request: dict[str, Any]) -> None:
        try:
            assert self._writer is not None
            write_frame(self._writer, dumps_named(request, {}, "input"))
        except (OSError, ValueError, AssertionError):
            pass

    def _crashed(self, doing: str) -> WorkerCrashed:
        process = self._process
        code: int | None = None
        if process is not None:
            try:
                code = process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)  # so the tail holds the worker's last words
        self._stop()
        tail = " | ".join(list(self._stderr_tail)[-5:]) or "(nothing on stderr)"
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        return WorkerCrashed(f"the worker process of isolated pack {self.pack!r} {how} while {doing or 'working'}; "
                             f"it will be restarted on the next call. Last output: {tail}")
