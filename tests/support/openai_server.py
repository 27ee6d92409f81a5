"""A real HTTP server on 127.0.0.1 that speaks the OpenAI wire format, for tests and benchmarks.

By default it answers like a tiny model: chat completions echo the last user message (streamed as SSE when asked),
embeddings are deterministic vectors, `/v1/models` lists two models. Tests script the next answers with
`server.script(Reply...)` to get errors, Retry-After, malformed bodies, slow answers or dropped connections, and
read what the client sent from `server.requests`.

    with OpenAIServer() as server:
        server.script(Reply.error(429, "slow down", headers={"Retry-After": "2"}))
        ...  # point a client at server.url
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = ("tiny-chat", "tiny-embed")


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Reply:
    """One scripted answer. `events` makes it an SSE stream; `drop` closes the connection instead of answering
    (after `drop_after` events, for streams); `delay` holds the answer back (released early when the server stops).
    """

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    events: tuple[Any, ...] | None = None
    delay: float = 0.0
    drop: bool = False
    drop_after: int = 0
    done_marker: bool = True

    @classmethod
    def json(cls, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(status=status, body=body, headers=headers or {})

    @classmethod
    def error(cls, status: int, message: str, *, code: str | None = None,
              headers: dict[str, str] | None = None) -> Reply:
        error = {"message": message, "type": "invalid_request_error", "code": code, "param": None}
        return cls(status=status, body={"error": error}, headers=headers or {})

    @classmethod
    def malformed(cls) -> Reply:
        return cls(raw=b'{"id": "chatcmpl-1", "choices": [{"message": ', headers={"Content-Type": "application/json"})

    @classmethod
    def slow(cls, seconds: float, then: Reply | None = None) -> Reply:
        base = then or cls.json(chat_completion("late"))
        return cls(status=base.status, body=base.body, raw=base.raw, headers=base.headers, events=base.events,
                   delay=seconds)

    @classmethod
    def dropped(cls) -> Reply:
        return cls(drop=True)

    @classmethod
    def stream(cls, events: list[Any], *, drop_after: int | None = None, done_marker: bool = True) -> Reply:
        return cls(events=tuple(events), drop=drop_after is not None, drop_after=drop_after or 0,
                   done_marker=done_marker)


def chat_completion(text: str | None, *, model: str = "tiny-chat", tool_calls: list[dict[str, Any]] | None = None,
                    finish_reason: str | None = None, prompt_tokens: int = 7, completion_tokens: int = 3,
                    ) -> dict[str, Any]:
    """A `chat.completion` object; `tool_calls` items are `{"id", "name", "arguments"}`."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["name"], "arguments": c["arguments"]}} for c in tool_calls]
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop")}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def chunk(delta: dict[str, Any], *, finish_reason: str | None = None, model: str = "tiny-chat") -> dict[str, Any]:
    return {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}


def usage_chunk(prompt_tokens: int = 7, completion_tokens: int = 3, model: str = "tiny-chat") -> dict[str, Any]:
    return {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def text_stream(pieces: list[str], *, finish_reason: str = "stop") -> list[dict[str, Any]]:
    """The chunks of a streamed text reply, ending with a finish reason and a usage chunk."""
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in pieces]
    events += [chunk({}, finish_reason=finish_reason), usage_chunk(completion_tokens=len(pieces))]
    return events


def embedding(text: str, dimensions: int = 4) -> list[float]:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [round(byte / 255, 6) for byte in digest[:dimensions]]


class OpenAIServer:
    """The server, run in a daemon thread; use as a context manager or call `start()`/`stop()`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self.stopping = threading.Event()
        self.failures: list[BaseException] = []  # handler errors other than clients going away
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.failures = self.failures
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="openai-test-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order, then go back to the default behaviour."""
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    def record(self, request: Recorded) -> Reply | None:
        with self._lock:
            self.requests.append(request)
            self._arrived.notify_all()
            return self._script.popleft() if self._script else None

    def wait_for_requests(self, count: int, *, path: str = "/chat/completions", timeout: float = 30) -> bool:
        """Block until `count` requests to `path` arrived (True), or `timeout` passed (False)."""
        with self._arrived:
            return self._arrived.wait_for(
                lambda: sum(1 for r in self.requests if r.path.endswith(path)) >= count, timeout)


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up (timeouts, dropped streams) are part of the tests; anything else is recorded."""

    daemon_threads = True
    request_queue_size = 128  # dozens of concurrent clients (the 32-chat-node tests) must not be reset
    failures: list[BaseException]

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, ConnectionError | TimeoutError):
            self.failures.append(error)


def _handler_for(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        owner = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    owner: OpenAIServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small SSE chunks would otherwise wait for delayed ACKs (~40 ms)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures, not access logs
        pass

    def do_GET(self) -> None:
        self._handle(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        self._handle(body)

    def _handle(self, body: Any) -> None:
        request = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        reply = self.owner.record(request) or _default_reply(request)
        if reply.delay and self.owner.stopping.wait(reply.delay):
            return
        if reply.drop and reply.events is None:
            self.close_connection = True
            return
        if reply.events is not None:
            self._send_stream(reply)
        else:
            self._send(reply)

    def _send(self, reply: Reply) -> None:
        payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode("utf-8")
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers, "Content-Length": str(len(payload))}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_stream(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **reply.headers,
                            "Transfer-Encoding": "chunked"}.items():
            self.send_header(name, value)
        self.end_headers()
        events = list(reply.events or ())
        if reply.drop:  # stop mid-body without the closing chunk: the client sees an incomplete message
            for event in events[:reply.drop_after]:
                self._chunk(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
            self.close_connection = True
            return
        for event in events:
            self._chunk(f"data: {json.dumps(event)}\n\n".encode())
        if reply.done_marker:
            self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def _default_reply(request: Recorded) -> Reply:
    path = request.path.split("?")[0]
    body = request.body if isinstance(request.body, dict) else {}
    if request.method == "GET" and path == "/v1/models":
        return Reply.json({"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "test"}
                                                       for m in MODELS]})
    if request.method == "POST" and path == "/v1/chat/completions":
        model = body.get("model", MODELS[0])
        text = f"echo: {_last_user_text(body.get('messages', []))}"
        if body.get("stream"):
            return Reply.stream([{**event, "model": model} for event in text_stream(_words(text))])
        return Reply.json(chat_completion(text, model=model))
    if request.method == "POST" and path == "/v1/embeddings":
        inputs = body.get("input", [])
        inputs = [inputs] if isinstance(inputs, str) else inputs
        data = [{"object": "embedding", "index": i, "embedding": embedding(text)} for i, text in enumerate(inputs)]
        return Reply.json({"object": "list", "data": data, "model": body.get("model", MODELS[1]),
                           "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})
    return Reply.error(404, f"no route for {request.method} {path}")


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [word + " " for word in words[:-1]] + words[-1:]


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return " ".join(part.get("text", "") for part in content or () if part.get("type") == "text")
    return ""
