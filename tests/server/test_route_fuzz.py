"""Every route of the app, found by walking its router (so a route added later is covered without editing this
file), gets hostile requests: a fixed sweep of the attacks that once gave 500s, then a bounded property-based run
of random paths, query strings, bodies, content types and Origin headers. None may answer 5xx or log a traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections import Counter
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.server.live import LiveServer, Tracebacks

Route = tuple[str, str, tuple[str, ...]]  # method, path template, parameter names

DEEP = b"[" * 1000 + b"]" * 1000
HOSTILE_SEGMENTS = ["a" * 300, "\u00e9" * 130, "..", "../../etc/passwd", "%00", "x\\y", "\udcff", "",
                    "a/" * 2100, "nope.json"]
HOSTILE_BODIES = [DEEP, b'{"a":' * 3000 + b"1" + b"}" * 3000, b'{"number": 1e400, "prompt": {}}',
                  b'{"prompt": {}, "number": 1' + b"0" * 400 + b"}", b"{oops", b"\xff\xfe", b"NaN", b"[]", b"null",
                  b""]
HOSTILE_ORIGINS = ["http://localhost:8490.evil.example", "http://[::1", "http://127.0.0.1:99999", "null",
                   "https://127.0.0.1:1"]


def app_routes(app: web.Application) -> list[Route]:
    """(method, path template, parameter names) of every route the app serves (HEAD twins left out)."""
    found: list[Route] = []
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        info = route.resource.get_info()
        template = info.get("path") or info.get("formatter") or (info.get("prefix", "") + "/{filename}")
        found.append((route.method, template, tuple(re.findall(r"{([^}:]+)", template))))
    return sorted(set(found))


def build_path(template: str, values: dict[str, str]) -> str:
    return re.sub(r"{([^}:]+)[^}]*}",
                  lambda m: quote(values[m.group(1)].encode("utf-8", "surrogatepass"), safe=""), template)


class Tally:
    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []

    def note(self, method: str, path: str, status: int, text: str) -> None:
        self.statuses[status] += 1
        if status >= 500:
            self.failures.append(f"{status} {method} {path[:120]}: {text[:200]}")

    @property
    def cases(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


async def _send(http: aiohttp.ClientSession, tally: Tally, method: str, path: str, *, body: bytes | None = None,
                content_type: str | None = None, origin: str | None = None) -> None:
    headers = {}
    if content_type:
        headers["Content-Type"] = content_type
    if origin:
        headers["Origin"] = origin
    async with http.request(method, path, data=body, headers=headers, allow_redirects=False) as resp:
        text = await resp.text(errors="replace")
        tally.note(method, path, resp.status, text)


def test_every_route_is_found(full_server: LiveServer) -> None:
    routes = app_routes(full_server.app)
    methods_paths = {(m, p) for m, p, _ in routes}
    for expected in [("POST", "/prompt"), ("POST", "/settings"), ("POST", "/v2/manager/queue/task"),
                     ("POST", "/v1/chat/completions"), ("POST", "/userdata/{file}/move/{dest}"),
                     ("GET", "/view"), ("POST", "/upload/image"), ("GET", "/gatepack/hello"), ("GET", "/metrics")]:
        assert expected in methods_paths, expected
    assert len(routes) > 100


def test_hostile_sweep_over_every_route(full_server: LiveServer, tracebacks: Tracebacks) -> None:
    """Each route gets each hostile path segment, each hostile body and each malformed Origin once."""
    routes = app_routes(full_server.app)
    tally = Tally()

    async def sweep() -> None:
        async with full_server.session() as http:
            for method, template, params in routes:
                if template in ("/ws", "/api/ws"):
                    continue  # a WebSocket upgrade, fuzzed by the websocket tests
                for segment in HOSTILE_SEGMENTS if params else ["x"]:
                    await _send(http, tally, method, build_path(template, dict.fromkeys(params, segment)))
                plain = build_path(template, dict.fromkeys(params, "x.json"))
                if method in ("POST", "PUT", "PATCH", "DELETE"):
                    for body in HOSTILE_BODIES:
                        await _send(http, tally, method, plain, body=body, content_type="application/json")
                for origin in HOSTILE_ORIGINS[:2]:  # the middleware answers before any handler: two suffice
                    await _send(http, tally, method, plain, origin=origin)
                for query in ({"filename": "a" * 300, "subfolder": "..", "dir": "\u00e9" * 200},
                              {"subfolder": "a" * 300, "filename": "x", "path": "../..", "max_items": "1e400"},
                              {"path": "a" * 300, "offset": "9" * 400, "type": "temp"}):
                    await _send(http, tally, method, f"{plain}?{urlencode(query)}")

    asyncio.run(sweep())
    full_server.engine.queue.clear()
    print(f"\nhostile sweep: {tally.cases} requests over {len(routes)} routes, {tally.server_errors} answered >= 500; "
          f"statuses {dict(sorted(tally.statuses.items()))}")
    assert tally.server_errors == 0, tally.failures[:10]


json_leaf = st.none() | st.booleans() | st.integers(-2**80, 2**80) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=10)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
field_names = st.sampled_from(["prompt", "number", "front", "client_id", "prompt_id", "delete", "clear", "username",
                               "model", "messages", "stream", "kind", "ui_id", "params", "id", "mode", "value",
                               "url", "name", "target", "cnr_id", "files"]) | st.text(max_size=6)
bodies = (st.none() | st.binary(max_size=48) | st.sampled_from(HOSTILE_BODIES)
          | json_value.map(lambda v: json.dumps(v).encode())
          | st.dictionaries(field_names, json_value, max_size=4).map(lambda v: json.dumps(v).encode()))
segments = st.text(max_size=24) | st.sampled_from(HOSTILE_SEGMENTS) | st.sampled_from(["x.json", "a/b.json", "default"])
queries = st.dictionaries(st.sampled_from(["filename", "subfolder", "type", "dir", "path", "max_items", "offset",
                                           "recurse", "full_info", "split", "overwrite", "preview", "channel",
                                           "mode", "ui_id", "target"]) | st.text(min_size=1, max_size=5),
                          segments, max_size=3)
content_types = st.sampled_from([None, "application/json", "text/plain", "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=zz", "multipart/form-data"])
origins = st.one_of(st.none(), st.none(), st.none(), st.sampled_from(HOSTILE_ORIGINS),  # mostly none: the 403
                    st.text(max_size=30).map(lambda t: f"http://{t}"))     # answers would hide the handlers


def test_random_requests_to_every_route(full_server: LiveServer, tracebacks: Tracebacks) -> None:
    routes = [r for r in app_routes(full_server.app) if r[1] not in ("/ws", "/api/ws")]
    tally = Tally()
    loop = asyncio.new_event_loop()
    http = loop.run_until_complete(_open(full_server))

    # bounded and repeatable in CI; PARTYFLOW_FUZZ_EXAMPLES=5000 runs a longer, fresh (random) campaign
    longer = int(os.environ.get("PARTYFLOW_FUZZ_EXAMPLES", "0"))

    @settings(max_examples=longer or 400, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=not longer, database=None)
    @given(route=st.sampled_from(routes), data=st.data(), body=bodies, query=queries,
           content_type=content_types, origin=origins)
    def check(route: Route, data: Any, body: bytes | None, query: dict[str, str], content_type: str | None,
              origin: str | None) -> None:
        method, template, params = route
        values = {name: data.draw(segments, label=name) for name in params}
        path = build_path(template, values)
        if query:
            path += "?" + urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in query.items()})
        if not _header_safe(origin):
            origin = None
        loop.run_until_complete(_send(http, tally, method, path, body=body, content_type=content_type,
                                      origin=origin))
        assert tally.server_errors == 0, tally.failures

    try:
        check()
    finally:
        full_server.engine.queue.clear()
        loop.run_until_complete(http.close())
        loop.close()
    print(f"\nroute fuzz: {tally.cases} requests over {len(routes)} routes, {tally.server_errors} answered >= 500; "
          f"statuses {dict(sorted(tally.statuses.items()))}")


async def _open(server: LiveServer) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(server.url)


def _header_safe(value: str | None) -> bool:
    return value is not None and value.isprintable() and value.isascii()
