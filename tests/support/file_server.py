"""A real HTTP file server on 127.0.0.1 for download tests: byte ranges, dropped connections, a hub-style API.

    with FileServer() as server:
        server.add("/files/tiny.gguf", data)
        server.drop("/files/tiny.gguf", after=1000)      # the next answer stops after 1000 body bytes
        server.add_repo("org/model", {"config.json": b"{}", "model.safetensors": weights}, lfs={"model.safetensors"})

Hub repos answer `/api/models/ORG/REPO/revision/REV` with a file list (`lfs.sha256` for the `lfs` files) and
`/ORG/REPO/resolve/REV/FILE` with a redirect, carrying `X-Linked-Etag` for lfs files as the hub does, to
`/blobs/...`, which serves the bytes. `server.requests` records every request with its headers.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.listings: dict[str, dict[str, Any]] = {}
        self.requests: list[Seen] = []
        self.honour_range = True
        self._drops: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="file-test-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def add(self, path: str, data: bytes, headers: Mapping[str, str] | None = None) -> str:
        """Serve `data` at `path`; returns its full URL."""
        self.files[path] = data
        self.headers[path] = dict(headers or {})
        return self.url + path

    def drop(self, path: str, *, after: int, times: int = 1) -> None:
        """The next `times` answers for `path` close the connection after `after` body bytes."""
        with self._lock:
            self._drops.setdefault(path, []).extend([after] * times)

    def add_repo(self, repo: str, files: Mapping[str, bytes], *, lfs: Iterable[str] = (), revision: str = "main",
                 wrong_etag: Iterable[str] = ()) -> None:
        """A hub repo: its file list, and each file behind a redirect (with X-Linked-Etag for `lfs` files)."""
        lfs, wrong = set(lfs), set(wrong_etag)
        siblings = []
        for name, data in files.items():
            digest = hashlib.sha256(data).hexdigest()
            blob = f"/blobs/{repo}/{digest}"
            self.add(blob, data)
            redirect = {"Location": blob}
            if name in lfs or name in wrong:
                redirect["X-Linked-Etag"] = f'"{"0" * 64 if name in wrong else digest}"'
            self.files[f"/{repo}/resolve/{revision}/{name}"] = b""
            self.headers[f"/{repo}/resolve/{revision}/{name}"] = {"__status__": "302", **redirect}
            entry: dict[str, Any] = {"rfilename": name}
            if name in lfs:
                entry["lfs"] = {"sha256": digest, "size": len(data)}
            siblings.append(entry)
        self.listings[f"/api/models/{repo}/revision/{revision}"] = {"id": repo, "siblings": siblings}

    def seen(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path.split("?")[0] == path]

    def record(self, seen: Seen) -> int | None:
        """Log a request; the drop point for its answer, if one is due."""
        with self._lock:
            self.requests.append(seen)
            pending = self._drops.get(seen.path.split("?")[0])
            return pending.pop(0) if pending else None


def _handler_for(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        owner = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    owner: FileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        drop_after = self.owner.record(Seen("GET", self.path, {k.lower(): v for k, v in self.headers.items()}))
        path = self.path.split("?")[0]
        if path in self.owner.listings:
            return self._send(200, json.dumps(self.owner.listings[path]).encode(), {"Content-Type": "application/json"})
        if path not in self.owner.files:
            return self._send(404, b'{"error": "not found"}', {"Content-Type": "application/json"})
        headers = dict(self.owner.headers[path])
        status = int(headers.pop("__status__", "200"))
        if status != 200:
            return self._send(status, b"", headers)
        self._send_file(self.owner.files[path], headers, drop_after)

    def _send_file(self, data: bytes, headers: dict[str, str], drop_after: int | None) -> None:
        start, status = 0, 200
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and self.owner.honour_range:
            start = int(match[1])
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        self.send_response(status)
        for name, value in {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", **headers,
                            "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if drop_after is not None:
            self.wfile.write(body[:drop_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
