"""Bad input and load: malformed prompts never cause a 500, 1,000 queued prompts all run, 100 WebSocket clients
are served at once, and a client that never reads is dropped without holding up anyone else."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.server.live import LiveServer, finished, hello_prompt, receive_until, run

json_leaf = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=8)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
class_types = st.sampled_from(["TextValue", "DisplayText", "IntValue", "JSONParse", "Gate", "Nope", ""]) | st.text()
node = st.fixed_dictionaries({"class_type": class_types | json_leaf},
                             optional={"inputs": st.dictionaries(st.sampled_from(["value", "text", "label", "x"]),
                                                                 json_value, max_size=3) | json_value})
prompts = st.dictionaries(st.text(min_size=1, max_size=3), node | json_value, max_size=4) | json_value
bodies = st.fixed_dictionaries({"prompt": prompts}, optional={
    "client_id": json_leaf, "number": json_leaf, "front": json_leaf, "extra_data": json_value,
    "prompt_id": json_leaf, "partial_execution_targets": json_value}) | json_value


def test_malformed_prompts_get_comfy_shaped_400s(server: LiveServer) -> None:
    loop = asyncio.new_event_loop()
    session = loop.run_until_complete(_session(server))

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies, raw=st.booleans())
    def check(body: Any, raw: bool) -> None:
        data = json.dumps(body).encode() if not raw else json.dumps(body).encode()[:-1]
        status, answer = loop.run_until_complete(_post(session, data))
        assert status in (200, 400), (status, answer)
        if status == 400:
            assert set(answer) == {"error", "node_errors"}
            assert set(answer["error"]) >= {"type", "message", "details", "extra_info"}
            assert isinstance(answer["node_errors"], dict)
            for entry in answer["node_errors"].values():
                assert {"errors", "dependent_outputs", "class_type"} <= set(entry)
                for error in entry["errors"]:
                    assert {"type", "message", "details", "extra_info"} <= set(error)
        else:
            assert set(answer) == {"prompt_id", "number", "node_errors"}

    try:
        check()
    finally:
        server.engine.queue.clear()
        loop.run_until_complete(session.close())
        loop.close()


async def _session(server: LiveServer) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(server.url)


async def _post(session: aiohttp.ClientSession, data: bytes) -> tuple[int, Any]:
    async with session.post("/prompt", data=data, headers={"Content-Type": "application/json"}) as resp:
        return resp.status, await resp.json()


def test_unknown_ids_and_wrong_types_elsewhere(server: LiveServer) -> None:
    async def scenario() -> None:
        async with server.session() as http:
            for path, body in [("/queue", {"delete": "x"}), ("/queue", [1]), ("/history", {"delete": [1]}),
                               ("/interrupt", {"prompt_id": 5}), ("/settings", [1, 2]), ("/users", {})]:
                resp = await http.post(path, json=body)
                assert resp.status == 400, path
            for path in ("/queue", "/history", "/interrupt", "/free", "/settings"):
                assert (await http.post(path, data=b"{oops")).status == 400, path
            assert (await http.post("/queue", json={"delete": ["unknown"]})).status == 200
            assert (await http.post("/history", json={"delete": ["unknown"]})).status == 200
            assert await (await http.get("/history/unknown")).json() == {}
            assert (await http.get("/nope")).status == 404
            assert (await http.get("/ws")).status in (400, 426)

    run(scenario())


def test_malformed_uploads_non_finite_numbers_and_name_clashes_are_client_errors(server: LiveServer) -> None:
    async def scenario() -> None:
        async with server.session() as http:
            for content_type, body in [("multipart/form-data; boundary=zzz", b"garbage"),
                                       ("multipart/form-data", b"garbage"),
                                       ("multipart/form-data; boundary=zzz",
                                        b'--zzz\r\nContent-Disposition: form-data; name="image"; filename="a.png"'
                                        b"\r\n\r\ntruncated")]:
                for route in ("/upload/image", "/upload/mask"):
                    resp = await http.post(route, data=body, headers={"Content-Type": content_type})
                    assert resp.status == 400, (route, content_type, await resp.text())
                    assert (await resp.json())["error"]["message"] == "the multipart body is malformed"
            # NaN/Infinity would be served back as text browsers cannot parse (a NaN setting stops the editor).
            for path, raw in [("/settings/Comfy.A", b"NaN"), ("/settings", b'{"a": Infinity}'),
                              ("/settings", b'{"a": 1e400}'),
                              ("/prompt", b'{"prompt": {}, "extra_data": {"x": NaN}}')]:
                resp = await http.post(path, data=raw)
                assert resp.status == 400, path
                assert "not a JSON number" in (await resp.json())["error"]["details"] \
                    or "too large" in (await resp.json())["error"]["details"]
            json.loads(await (await http.get("/settings")).text(), parse_constant=_no_constants)
            # A path through a file, or a folder as the target: the user's naming clash, answered 409.
            assert (await http.post("/userdata/a.json", data=b"{}")).status == 200
            assert (await http.post("/userdata/a.json%2Fb.json", data=b"{}")).status == 409
            assert (await http.post("/userdata/a.json/move/a.json%2Fc.json")).status == 409
            assert (await http.post("/userdata/sub%2Fd.json", data=b"{}")).status == 200
            assert (await http.post("/userdata/a.json/move/sub")).status == 409
            form = aiohttp.FormData()
            form.add_field("image", b"x", filename="f.png", content_type="image/png")
            assert (await http.post("/upload/image", data=form)).status == 200
            form = aiohttp.FormData()
            form.add_field("image", b"x", filename="g.png", content_type="image/png")
            form.add_field("subfolder", "f.png")
            assert (await http.post("/upload/image", data=form)).status == 409

    run(scenario())


def _no_constants(token: str) -> None:
    raise AssertionError(f"the server answered {token}, which is not JSON")


def test_a_thousand_queued_prompts_all_run(server: LiveServer) -> None:
    async def scenario() -> None:
        connector = aiohttp.TCPConnector(limit=20)
        async with server.session(connector=connector) as http, http.ws_connect(server.ws_url("bulk")) as ws:
            async def post(n: int) -> str:
                resp = await http.post("/prompt", json={"prompt": hello_prompt(f"n{n}"), "client_id": "bulk"})
                assert resp.status == 200
                return (await resp.json())["prompt_id"]

            ids = await asyncio.gather(*(post(n) for n in range(1000)))
            done: set[str] = set()

            def all_done(message: dict) -> bool:
                if finished(message["data"].get("prompt_id", ""))(message):
                    done.add(message["data"]["prompt_id"])
                return len(done) == 1000

            await receive_until(ws, all_done, timeout=120)
            history = await (await http.get("/history")).json()
            assert set(ids) <= set(history)
            assert all(history[i]["status"]["status_str"] == "success" for i in ids)
            assert (await (await http.get("/prompt")).json())["exec_info"]["queue_remaining"] == 0

    run(scenario())


def test_a_hundred_websocket_clients(server: LiveServer) -> None:
    async def scenario() -> None:
        async with server.session(connector=aiohttp.TCPConnector(limit=0)) as http:
            sockets = await asyncio.gather(*(http.ws_connect(server.ws_url(f"c{n}")) for n in range(100)))
            try:
                for ws in sockets:
                    assert (await ws.receive_json())["type"] == "status"
                ids = await asyncio.gather(*(
                    http.post("/prompt", json={"prompt": hello_prompt(f"c{n}"), "client_id": f"c{n}"})
                    for n in range(100)))
                prompt_ids = [(await r.json())["prompt_id"] for r in ids]
                results = await asyncio.gather(*(receive_until(ws, finished(pid), timeout=60)
                                                 for ws, pid in zip(sockets, prompt_ids, strict=True)))
                for n, messages in enumerate(results):
                    executed = [m for m in messages if m["type"] == "executed"]
                    assert [m["data"]["output"] for m in executed] == [{"text": [f"c{n}"]}]
                metrics = await (await http.get("/metrics")).text()
                assert "partyflow_websocket_clients 100.0" in metrics
            finally:
                await asyncio.gather(*(ws.close() for ws in sockets))

    run(scenario())


def test_client_that_never_reads_is_dropped(server_factory) -> None:
    server = server_factory(ws_max_pending_bytes=1024 * 1024)
    host, port = server.url.removeprefix("http://").split(":")
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window, and we never read it
    stuck.connect((host, int(port)))
    stuck.sendall(f"GET /ws?clientId=stuck HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    big = "x" * 100_000
    count = 100

    async def scenario() -> None:
        async with server.session() as http, http.ws_connect(server.ws_url("reader")) as ws:
            executed: list[str] = []

            async def read() -> None:
                async for msg in ws:
                    message = json.loads(msg.data)
                    if message["type"] == "executed":
                        executed.append(message["data"]["prompt_id"])
                        if len(executed) == count:
                            return

            reader = asyncio.create_task(read())
            # Prompts without client_id broadcast to everyone, so the stuck client is sent ~100 kB per prompt.
            for n in range(count):
                resp = await http.post("/prompt", json={"prompt": hello_prompt(f"{big}{n}")})
                assert resp.status == 200
            async with asyncio.timeout(60):
                await reader
            assert len(executed) == count
            metrics = await (await http.get("/metrics")).text()
            assert 'partyflow_websocket_dropped_total{reason="slow_reader"} 1.0' in metrics
            assert "partyflow_websocket_clients 1.0" in metrics

    try:
        run(scenario())
    finally:
        stuck.close()
