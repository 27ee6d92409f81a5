"""The worker process of an isolated pack: imports the pack in the pack's own venv and runs its nodes for the host.

Started by the host as `<venv python> -m partyflow.nodes.isolation.worker PACK_DIR HOME_ROOT TIMEOUT`; partyflow
itself is importable there through a `.pth` file the host writes into the venv (see `environment.py`), and only
its standard-library-only parts are used: the node protocol, the registry and the ComfyUI compatibility modules.
So a pack sees the same `folder_paths`, `comfy.utils.ProgressBar` and `PromptServer` as in the host, while its
`import somelib` finds the venv's version.

The protocol pipes are the process's original stdin and stdout, duplicated at start-up; file descriptors 0 and 1 are
then pointed at /dev/null and stderr, so a pack that prints cannot corrupt a frame. One request is handled at a
time on the main thread; a reader thread only queues requests and applies `interrupt` at once.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import pickle
import queue
import sys
import threading
import traceback
from pathlib import Path
from typing import IO, Any

from partyflow.nodes.isolation.wire import ChannelClosed, dumps_named, loads_reported, read_frame, write_frame

_INFO_SKIP = frozenset({"INPUT_TYPES", "IS_CHANGED", "VALIDATE_INPUTS", "FUNCTION"})


def signature_of(method: Any) -> list[tuple[str, int, bool]] | None:
    """(name, kind, has default) of each parameter as seen on the class, or None when it cannot be read."""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return None
    return [(p.name, int(p.kind), p.default is not inspect.Parameter.empty) for p in params]


def class_info(class_type: str, cls: type, display_name: str | None) -> dict[str, Any]:
    """What the host needs to build a proxy with the same interface: the upper-case class attributes that can be
    pickled, which optional methods exist (with their signatures) and INPUT_TYPES as it is now."""
    attributes: dict[str, Any] = {}
    for name in dir(cls):
        if not name.isupper() or name in _INFO_SKIP:
            continue
        value = getattr(cls, name, None)
        if callable(value):
            continue
        try:
            pickle.dumps(value)
        except Exception:  # an attribute that cannot travel is left out; the protocol ones are plain data
            continue
        attributes[name] = value
    function = getattr(cls, "FUNCTION", None)
    try:
        input_types = cls.INPUT_TYPES()
        pickle.dumps(input_types)
    except Exception:  # as in-process: a broken INPUT_TYPES hides this class from object_info, not the pack
        input_types = {}
    optional = {name: signature_of(getattr(cls, name)) for name in ("IS_CHANGED", "VALIDATE_INPUTS")
                if callable(getattr(cls, name, None))}
    return {"class_type": class_type, "name": cls.__name__, "display_name": display_name, "function": function,
            "attributes": attributes, "input_types": input_types, "optional": optional,
            "lazy_status": callable(getattr(cls, "check_lazy_status", None)),
            "is_async": isinstance(function, str) and inspect.iscoroutinefunction(getattr(cls, function, None))}


class Worker:
    """Holds the loaded pack, the node instances the host created, and the channel back to the host."""

    def __init__(self, out: IO[bytes], pack: Path, home_root: Path, timeout: float) -> None:
        from partyflow.config import Home
        from partyflow.nodes.host import HostContext
        from partyflow.nodes.registry import NodeRegistry

        self._out = out
        self._write_lock = threading.Lock()
        self.instances: dict[int, Any] = {}
        self.interrupt: threading.Event | None = None
        self.host = HostContext(home=Home(home_root), registry=NodeRegistry(), emit_custom=self._custom)
        self.pack, self.timeout = pack, timeout

    # --- messages to the host ---------------------------------------------------------------------------

    def send(self, message: tuple[Any, ...], values: Any = (), what: str = "value") -> None:
        payload = dumps_named(message, values, what)
        with self._write_lock:
            write_frame(self._out, payload)

    def _custom(self, event: str, data: Any, client_id: str | None) -> None:
        try:
            self.send(("custom", event, data, client_id), {"data": data}, "custom message")
        except TypeError:
            print(f"partyflow worker: custom message {event!r} could not be pickled; dropped", file=sys.stderr)

    def _progress(self, value: float, total: float, preview: Any = None) -> None:
        try:
            self.send(("progress", value, total, preview), {"preview": preview}, "progress preview")
        except TypeError:  # a preview image of a type that cannot travel: keep the numbers
            self.send(("progress", value, total, None))

    # --- requests ---------------------------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        from partyflow.nodes.loader import load_pack

        result = load_pack(self.pack, self.host, timeout=self.timeout)
        classes = []
        if result.ok:
            for class_type in result.node_types:
                entry = self.host.registry.entry(class_type)
                classes.append(class_info(class_type, entry.cls, entry.display_name))
        return {"ok": result.ok, "error": result.error, "traceback": result.traceback, "classes": classes,
                "web_directory": str(result.web_directory) if result.web_directory else None,
                "python": sys.executable, "timed_out": result.timed_out}

    def handle(self, request: dict[str, Any]) -> Any:
        from partyflow.nodes.host import host_context

        op = request["op"]
        with host_context(self.host):
            if op == "input_types":
                return self._cls(request).INPUT_TYPES()
            if op == "class_call":
                return _settle(getattr(self._cls(request), request["method"])(**request["kwargs"]))
            if op == "call":
                for stale in request.get("release", ()):
                    self.instances.pop(stale, None)
                return self._call(request)
            if op == "ping":
                return "pong"
        raise ValueError(f"unknown request {op!r}")

    def _cls(self, request: dict[str, Any]) -> type:
        return self.host.registry.entry(request["class_type"]).cls

    def _call(self, request: dict[str, Any]) -> Any:
        from partyflow.nodes.host import NodeScope, node_scope

        instance = self.instances.get(request["instance"])
        if instance is None:
            instance = self.instances[request["instance"]] = self._cls(request)()
        scope_data = request.get("scope") or {}
        self.interrupt = threading.Event()
        scope = NodeScope(prompt_id=scope_data.get("prompt_id", ""), node_id=scope_data.get("node_id", ""),
                          report_progress=self._progress, interrupt=self.interrupt,
                          client_id=scope_data.get("client_id"), call_index=scope_data.get("call_index", 0))
        try:
            with node_scope(scope):
                return _settle(getattr(instance, request["method"])(**request["kwargs"]))
        finally:
            self.interrupt = None


def _settle(value: Any) -> Any:
    """Run an async node method to completion: in the worker every call is one blocking request."""
    return asyncio.run(value) if inspect.isawaitable(value) else value


def _error(exc: BaseException) -> dict[str, Any]:
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return {"type": name, "name": kind.__name__, "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc))}


def _reader(stream: IO[bytes], requests: queue.Queue[Any], worker: Worker) -> None:
    """Queue requests; an interrupt is applied at once to the call in progress (ProgressBar/model_management see
    it through the node scope)."""
    while True:
        try:
            payload = read_frame(stream)
        except (ChannelClosed, OSError):
            requests.put(None)
            return
        try:
            request = loads_reported(payload, "request")
        except Exception as exc:
            requests.put(("bad", exc))
            continue
        if isinstance(request, dict) and request.get("op") == "interrupt":
            event = worker.interrupt
            if event is not None:
                event.set()
            continue
        requests.put(request)


def _reply(worker: Worker, request: Any) -> None:
    if isinstance(request, tuple) and request[:1] == ("bad",):
        worker.send(("error", _error(request[1])))
        return
    try:
        value = worker.handle(request)
    except BaseException as exc:  # the pack's failure (SystemExit included) is the node's error, not ours
        worker.send(("error", _error(exc)))
        return
    what = "output" if request.get("op") == "call" else "value"
    outputs = value if isinstance(value, (tuple, list)) else [value]
    try:
        worker.send(("ok", value), outputs, what)
    except TypeError as exc:
        worker.send(("error", _error(exc)))


def main(argv: list[str]) -> None:
    pack, home_root, timeout = Path(argv[0]), Path(argv[1]), float(argv[2]) if len(argv) > 2 else 30.0
    channel_in = os.fdopen(os.dup(0), "rb")
    channel_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # whatever the pack prints goes to stderr, which the host keeps for error messages
    sys.stdout = sys.stderr
    worker = Worker(channel_out, pack, home_root, timeout)
    try:
        worker.send(("ok", worker.load()))
    except BaseException as exc:
        worker.send(("error", _error(exc)))
        os._exit(3)
    requests: queue.Queue[Any] = queue.Queue()
    threading.Thread(target=_reader, args=(channel_in, requests, worker), daemon=True).start()
    while (request := requests.get()) is not None:
        try:
            _reply(worker, request)
        except (BrokenPipeError, ChannelClosed):
            break
    sys.stderr.flush()
    os._exit(0)  # threads a pack left running must not keep the worker alive


if __name__ == "__main__":
    main(sys.argv[1:])
