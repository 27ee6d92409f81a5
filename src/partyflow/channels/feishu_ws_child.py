"""The Feishu/Lark long connection in a process of its own: `python -P feishu_ws_child.py ...` (or `python -m
partyflow.channels.feishu_ws_child ...`).

Why a process: lark-oapi's `lark_oapi.ws.Client` binds an event loop when its module is imported, blocks in
`start()` with no way to stop it, and makes blocking HTTP calls inside its coroutines, so it cannot share
partyflow's event loop with the other channels. Here it owns the whole process; the parent
(`partyflow.channels.feishu_ws`) supervises it.

Protocol with the parent:
- credentials come by environment-variable name (`--app-id-env`, `--app-secret-env`), never on the command line;
- every `im.message.receive_v1` event is written to stdout as one JSON line `{"event": {...}}` before the SDK
  acknowledges its frame (everything the SDK itself prints goes to stderr);
- the parent closes our stdin to stop us; its death closes it too, so the process never outlives it;
- exit status: 0 stopped, 2 the platform refused the app credentials (restarting would not help),
  3 the connection was lost and the SDK gave up reconnecting, 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import Any, TextIO

EXIT_STOPPED, EXIT_FAILED, EXIT_REFUSED, EXIT_LOST = 0, 1, 2, 3
EVENT_TYPE = "im.message.receive_v1"


class _Emitter:
    """JSON lines to the parent, one writer at a time; a closed pipe means the parent is gone."""

    def __init__(self, out: TextIO) -> None:
        self._out, self._lock = out, threading.Lock()

    def __call__(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except OSError:  # BrokenPipeError: nobody to deliver to
                os._exit(EXIT_STOPPED)


def _exit_with_parent() -> None:
    """Block on stdin; end of file (the parent closed it, or died) ends the process at once."""
    try:
        while sys.stdin.buffer.read(65536):
            pass
    except OSError:
        pass
    os._exit(EXIT_STOPPED)


def event_record(data: Any) -> dict[str, Any]:
    """A lark `CustomizedEvent` as the v2 event JSON the HTTP event subscription delivers (header + event)."""
    header = data.header
    return {"schema": "2.0",
            "header": {"event_id": header.event_id, "event_type": header.event_type,
                       "create_time": header.create_time, "tenant_key": header.tenant_key, "app_id": header.app_id},
            "event": data.event or {}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="partyflow.channels.feishu_ws_child")
    parser.add_argument("--app-id-env", required=True)
    parser.add_argument("--app-secret-env", required=True)
    parser.add_argument("--domain", default="https://open.feishu.cn")
    args = parser.parse_args(argv)
    app_id, app_secret = os.environ.get(args.app_id_env, ""), os.environ.get(args.app_secret_env, "")
    if not app_id.strip() or not app_secret.strip():
        print(f"the environment variables {args.app_id_env} and {args.app_secret_env} must be set", file=sys.stderr)
        return EXIT_REFUSED

    # stdout is the parent's event channel: keep a private handle, and send fd 1 (lark's log handler) to stderr
    emit = _Emitter(os.fdopen(os.dup(1), "w", encoding="utf-8"))
    os.dup2(2, 1)
    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()

    import lark_oapi as lark
    from lark_oapi.ws import client as ws_client
    from lark_oapi.ws.exception import ClientException, ServerUnreachableException

    def on_lost(loop: Any, context: dict[str, Any]) -> None:
        """An SDK task died unretrieved: when its reconnecting gave up (or the platform refused us while
        reconnecting) exit, so the parent restarts us or reports the refusal; anything else is only logged."""
        exc = context.get("exception")
        print(f"the long connection reported: {exc or context.get('message')}", file=sys.stderr, flush=True)
        if isinstance(exc, ClientException):
            os._exit(EXIT_REFUSED)
        if isinstance(exc, ServerUnreachableException):
            os._exit(EXIT_LOST)

    handler = (lark.EventDispatcherHandler.builder("", "")
               .register_p2_customized_event(EVENT_TYPE, lambda data: emit({"event": event_record(data)}))
               .build())
    ws_client.loop.set_exception_handler(on_lost)
    client = lark.ws.Client(app_id, app_secret, event_handler=handler, domain=args.domain.rstrip("/"),
                            log_level=lark.LogLevel.WARNING)
    try:
        client.start()  # returns only by an exception
    except ClientException as exc:
        print(f"Feishu refused the app credentials: {exc}", file=sys.stderr, flush=True)
        return EXIT_REFUSED
    except Exception as exc:  # ServerUnreachableException after the configured reconnects, or worse
        print(f"the long connection failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return EXIT_LOST
    return EXIT_FAILED


if __name__ == "__main__":
    status = main()
    sys.stderr.flush()
    os._exit(status)  # not sys.exit: the stdin watcher thread would crash the interpreter's shutdown
