"""Builders for the manager tests: tiny wheels, packs, fresh venvs and a loopback HTTP server."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from partyflow.manager.dependencies import find_uv


def make_wheel(directory: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """Write a valid pure-Python wheel (METADATA, WHEEL, RECORD) with one module that knows its version."""
    module = name.replace("-", "_")
    dist = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\n" f"Name: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: partyflow-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return target


def make_pack(root: Path, name: str, requirements: tuple[str, ...] = (), *, body: str | None = None,
              pyproject_deps: tuple[str, ...] = ()) -> Path:
    """A ComfyUI-style pack directory with one node class."""
    pack = root / name
    pack.mkdir(parents=True, exist_ok=True)
    pack.joinpath("__init__.py").write_text(body if body is not None else (
        "class Hello:\n"
        "    @classmethod\n"
        "    def INPUT_TYPES(cls):\n        return {'required': {}}\n"
        "    RETURN_TYPES = ('STRING',)\n    FUNCTION = 'run'\n    CATEGORY = 'test'\n"
        "    def run(self):\n        return ('hi',)\n"
        f"NODE_CLASS_MAPPINGS = {{'{name}Hello': Hello}}\n"))
    if requirements:
        pack.joinpath("requirements.txt").write_text("\n".join(requirements) + "\n")
    if pyproject_deps:
        deps = ", ".join(json.dumps(d) for d in pyproject_deps)
        pack.joinpath("pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "1.0.0"\n'
                                                   f"dependencies = [{deps}]\n")
    return pack


def make_venv(path: Path) -> str:
    """A fresh, empty venv (uv when present: milliseconds); returns its python."""
    uv = find_uv()
    if uv:
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(path)], check=True)
    else:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return str(path / "bin" / "python")


Route = Callable[[str], tuple[int, str, bytes] | None]


@dataclass
class Served:
    url: str
    requests: list[str] = field(default_factory=list)


@contextmanager
def serve(routes: Mapping[str, Any] | Route) -> Iterator[Served]:
    """A real HTTP server on 127.0.0.1 in a thread. `routes` maps a path (with its query) to a JSON-able
    value or bytes, or is a function of the path; every request path is recorded."""
    served = Served(url="")
    log = served.requests

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            log.append(self.path)
            found = routes(self.path) if callable(routes) else _lookup(routes, self.path)
            status, ctype, body = found if found is not None else (404, "application/json", b'{"message":"not found"}')
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        served.url = f"http://127.0.0.1:{server.server_address[1]}"
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _lookup(routes: Mapping[str, Any], path: str) -> tuple[int, str, bytes] | None:
    if path not in routes:
        return None
    value = routes[path]
    if isinstance(value, bytes):
        return 200, "application/octet-stream", value
    return 200, "application/json", json.dumps(value).encode()
