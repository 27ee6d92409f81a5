"""Hostile input found by attacking `partyflow serve` (issue 10, parts 2-3): each once answered 500 (or passed a
check it should not have). Every one must be a 4xx with a clear reason, and none may log a traceback."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from tests.server.live import LiveServer, Tracebacks, hello_prompt, run

from partyflow import Engine

DEEP = b"[" * 1000 + b"]" * 1000
DEEPER = b'{"a":' * 5000 + b"1" + b"}" * 5000
LONG = "a" * 300


async def _answer(resp: aiohttp.ClientResponse) -> Any:
    return await resp.json(content_type=None)


def test_deep_json_is_a_400_on_every_json_route(full_server: LiveServer, tracebacks: Tracebacks) -> None:
    json_type = {"Content-Type": "application/json"}

    async def scenario() -> None:
        async with full_server.session() as http:
            for path in ("/prompt", "/settings", "/settings/Comfy.A", "/users", "/queue", "/history", "/interrupt",
                         "/free", "/v2/manager/queue/task", "/v2/customnode/import_fail_info", "/v2/manager/db_mode",
                         "/v1/chat/completions"):
                for body in (DEEP, DEEPER):
                    resp = await http.post(path, data=body, headers=json_type)
                    answer = await _answer(resp)
                    assert resp.status == 400, (path, resp.status, answer)
                    assert "nests more than 128 levels" in str(answer), (path, answer)

    run(scenario())


def test_deep_values_inside_a_prompt_are_refused_without_a_traceback(server: LiveServer,
                                                                     tracebacks: Tracebacks) -> None:
    async def scenario() -> None:
        async with server.session() as http:
            deep_value = '{"prompt": {"1": {"class_type": "TextValue", "inputs": {"value": ' + "[" * 900 \
                + "]" * 900 + '}}, "2": {"class_type": "DisplayText", "inputs": {"text": ["1", 0]}}}}'
            resp = await http.post("/prompt", data=deep_value)
            assert resp.status == 400
            assert "nests more than 128 levels" in (await resp.json())["error"]["details"]

    run(scenario())


def test_validation_refuses_deep_values_itself(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """Prompts also arrive through the Python API and the CLI, which have no body reader to bound them."""
    from partyflow.graph.validate import validate_prompt

    value: Any = "x"
    for _ in range(900):
        value = [value]
    prompt = {"1": {"class_type": "TextValue", "inputs": {"value": {"__value__": value}}},
              "2": {"class_type": "DisplayText", "inputs": {"text": ["1", 0]}}}
    result = validate_prompt(prompt, engine.registry)
    assert not result.ok
    assert [e["type"] for e in result.node_errors["1"]["errors"]] == ["value_too_deep"]


def test_queue_numbers_are_bounded_integers(server: LiveServer, tracebacks: Tracebacks) -> None:
    async def scenario() -> None:
        async with server.session() as http:
            for number in ("1e400", "1" + "0" * 400, "-" + "9" * 30, "1.5", "true", '"3"'):
                body = f'{{"prompt": {_json(hello_prompt())}, "number": {number}}}'
                resp = await http.post("/prompt", data=body)
                answer = await resp.json()
                assert resp.status == 400, (number, answer)
            for number, expected in (("-100", -100), ("5.0", 5), ("7", 7)):
                body = f'{{"prompt": {_json(hello_prompt())}, "number": {number}}}'
                answer = await (await http.post("/prompt", data=body)).json()
                assert answer["number"] == expected and isinstance(answer["number"], int), answer
            plain = await (await http.post("/prompt", json={"prompt": hello_prompt()})).json()
            assert isinstance(plain["number"], int)
            queue = await (await http.get("/queue")).json()
            for entry in queue["queue_running"] + queue["queue_pending"]:
                assert isinstance(entry[0], int)
        server.engine.queue.clear()

    run(scenario())


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def test_over_long_file_names_are_a_400_with_a_clear_reason(server: LiveServer, tracebacks: Tracebacks) -> None:
    async def scenario() -> None:
        async with server.session() as http:
            assert (await http.post("/userdata/ok.json", data=b"{}")).status == 200
            requests = [("GET", f"/userdata/{LONG}"), ("POST", f"/userdata/{LONG}"), ("DELETE", f"/userdata/{LONG}"),
                        ("POST", f"/userdata/ok.json/move/{LONG}"), ("POST", f"/userdata/{LONG}/move/b.json"),
                        ("GET", f"/view?filename={LONG}"), ("GET", f"/view?filename=a.png&subfolder={LONG}"),
                        ("GET", f"/userdata?dir={LONG}"), ("GET", f"/v2/userdata?path={LONG}"),
                        ("GET", f"/userdata/{'%C3%A9' * 130}.json"),  # 260 bytes in UTF-8
                        ("GET", "/userdata/" + "%2F".join(["d" * 200] * 25))]  # every name fits, the path does not
            for method, path in requests:
                resp = await http.request(method, path)
                answer = await resp.json()
                assert resp.status == 400, (method, path[:60], answer)
                assert "bytes" in answer["error"]["details"], answer
            for name, subfolder in ((LONG + ".png", ""), ("a.png", LONG)):
                form = aiohttp.FormData()
                form.add_field("image", b"x", filename=name, content_type="image/png")
                form.add_field("subfolder", subfolder)
                resp = await http.post("/upload/image", data=form)
                assert resp.status == 400, await resp.text()
            # the longest name that fits still works, and its " (1)" twin is refused rather than a 500
            edge = "e" * 251 + ".png"
            for expected in (200, 400):
                form = aiohttp.FormData()
                form.add_field("image", b"x", filename=edge, content_type="image/png")
                assert (await http.post("/upload/image", data=form)).status == expected
            assert (await http.get("/userdata/ok.json")).status == 200

    run(scenario())


def test_malformed_origins_and_hosts_are_refused(server: LiveServer, tracebacks: Tracebacks) -> None:
    port = server.url.rsplit(":", 1)[1]

    async def scenario() -> None:
        async with server.session() as http:
            for origin in ("http://localhost:8490.evil.example", "http://[::1", "http://127.0.0.1:99999",
                           f"https://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", "null", f"127.0.0.1:{port}",
                           f"http://127.0.0.1:{port}/path", f"http://127.0.0.1:{port}, http://evil.example",
                           f"http://evil.example:{port}", "http://127.0.0.1:0"):
                resp = await http.get("/queue", headers={"Origin": origin})
                assert resp.status == 403, (origin, resp.status)
                assert (await resp.json())["error"]["type"] == "forbidden"
            for host in (f"127.0.0.1:{port}, evil.example", f"127.0.0.1:{port},evil.example",
                         f"127.0.0.1:{port} evil.example", "evil.example", f"localhost:{port}.evil.example",
                         "127.0.0.1:99999", "[::1"):
                resp = await http.get("/queue", headers={"Host": host})
                assert resp.status == 403, (host, resp.status)
            for origin in (f"http://127.0.0.1:{port}", f"HTTP://127.0.0.1:{port}"):
                assert (await http.get("/queue", headers={"Origin": origin})).status == 200
            resp = await http.get("/queue", headers={"Host": f"localhost:{port}",
                                                     "Origin": f"http://localhost:{port}"})
            assert resp.status == 200

    run(scenario())


def test_links_on_undeclared_inputs_are_refused_up_front(server: LiveServer) -> None:
    async def scenario() -> None:
        async with server.session() as http:
            prompt = {**hello_prompt(), "3": {"class_type": "TextValue", "inputs": {"value": "y"}}}
            prompt["1"]["inputs"]["bogus"] = ["3", 0]
            resp = await http.post("/prompt", json={"prompt": prompt})
            answer = await resp.json()
            assert resp.status == 400, answer
            assert answer["error"]["type"] == "prompt_outputs_failed_validation"
            [error] = answer["node_errors"]["1"]["errors"]
            assert error["type"] == "undeclared_input" and error["extra_info"]["input_name"] == "bogus"
            assert set(error) == {"type", "message", "details", "extra_info"}
            # a link to a node that does not exist, on an undeclared input, is refused the same way
            prompt["1"]["inputs"]["bogus"] = ["99", 0]
            assert (await http.post("/prompt", json={"prompt": prompt})).status == 400
            # constants on undeclared inputs stay ignored, as in ComfyUI
            prompt["1"]["inputs"]["bogus"] = "just text"
            assert (await http.post("/prompt", json={"prompt": prompt})).status == 200

    run(scenario())


def test_deep_json_over_the_websocket_is_ignored(server: LiveServer, tracebacks: Tracebacks) -> None:
    async def scenario() -> None:
        async with server.session() as http, http.ws_connect(server.ws_url("deep")) as ws:
            assert (await ws.receive_json())["type"] == "status"
            await ws.send_str(DEEP.decode() * 3)
            await ws.send_json({"type": "feature_flags", "data": {}})
            while (message := await ws.receive_json(timeout=10))["type"] != "feature_flags":
                pass
            assert "max_upload_size" in message["data"]

    run(scenario())
