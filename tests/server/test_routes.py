"""Every ComfyUI route answers in ComfyUI's shapes, with and without the /api prefix, on a real server."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from tests.server.live import LiveServer, finished, hello_prompt, receive_until, run


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_prompt_runs_and_lands_in_history(server: LiveServer, prefix: str) -> None:
    async def scenario() -> None:
        async with server.session() as http, http.ws_connect(server.ws_url("c1")) as ws:
            resp = await http.post(f"{prefix}/prompt", json={"prompt": hello_prompt("hi"), "client_id": "c1"})
            assert resp.status == 200, await resp.text()
            body = await resp.json()
            assert set(body) == {"prompt_id", "number", "node_errors"} and body["node_errors"] == {}
            await receive_until(ws, finished(body["prompt_id"]))
            history = await (await http.get(f"{prefix}/history/{body['prompt_id']}")).json()
            entry = history[body["prompt_id"]]
            assert entry["outputs"] == {"2": {"text": ["hi"]}}
            assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
            assert entry["prompt"][1] == body["prompt_id"] and entry["prompt"][3]["client_id"] == "c1"
            assert await (await http.get(f"{prefix}/prompt")).json() == {"exec_info": {"queue_remaining": 0}}

    run(scenario())


def test_client_prompt_id_number_front_and_queue_management(server: LiveServer, tmp_path: Path) -> None:
    gate = tmp_path / "release"

    def gated(label: str) -> dict:
        return {"1": {"class_type": "Gate", "inputs": {"label": label, "release": str(gate)}}}

    async def scenario() -> None:
        async with server.session() as http, http.ws_connect(server.ws_url("q")) as ws:
            first = await (await http.post("/prompt", json={"prompt": gated("a"), "prompt_id": "mine-1",
                                                            "client_id": "q"})).json()
            assert first["prompt_id"] == "mine-1"
            await receive_until(ws, lambda m: m["type"] == "executing" and m["data"]["node"] == "1")
            for name in ("p2", "p3", "p4"):
                assert (await http.post("/prompt", json={"prompt": gated(name), "prompt_id": name})).status == 200
            front = await (await http.post("/prompt", json={"prompt": gated("f"), "prompt_id": "pf",
                                                            "front": True})).json()
            numbered = await (await http.post("/prompt", json={"prompt": gated("n"), "prompt_id": "pn",
                                                               "number": -100})).json()
            assert numbered["number"] == -100
            queue = await (await http.get("/api/queue")).json()
            assert [item[1] for item in queue["queue_running"]] == ["mine-1"]
            assert [item[1] for item in queue["queue_pending"]] == ["pn", "pf", "p2", "p3", "p4"]
            assert front["number"] < queue["queue_pending"][2][0]
            dup = await http.post("/prompt", json={"prompt": gated("a"), "prompt_id": "mine-1"})
            assert dup.status == 400 and (await dup.json())["error"]["type"] == "invalid_prompt"

            assert (await http.post("/queue", json={"delete": ["p3", "unknown"]})).status == 200
            pending = [i[1] for i in (await (await http.get("/queue")).json())["queue_pending"]]
            assert pending == ["pn", "pf", "p2", "p4"]
            assert (await http.post("/queue", json={"clear": True})).status == 200
            assert (await (await http.get("/queue")).json())["queue_pending"] == []

            assert (await http.post("/interrupt", json={"prompt_id": "not-running"})).status == 200
            assert (await http.post("/interrupt", json={"prompt_id": "mine-1"})).status == 200
            messages = await receive_until(ws, finished("mine-1"))
            assert "execution_interrupted" in [m["type"] for m in messages]
            history = await (await http.get("/history/mine-1")).json()
            assert history["mine-1"]["status"]["status_str"] == "error"
            assert await (await http.get("/history/nope")).json() == {}

    run(scenario())


def test_history_listing_max_items_delete_clear(server: LiveServer) -> None:
    async def scenario() -> None:
        async with server.session() as http, http.ws_connect(server.ws_url("h")) as ws:
            ids = []
            for n in range(4):
                body = await (await http.post("/prompt", json={"prompt": hello_prompt(f"t{n}"),
                                                               "client_id": "h"})).json()
                ids.append(body["prompt_id"])
            await receive_until(ws, finished(ids[-1]))
            assert list(await (await http.get("/history")).json()) == ids
            assert list(await (await http.get("/history?max_items=2")).json()) == ids[-2:]
            assert list(await (await http.get("/api/history?max_items=1&offset=1")).json()) == ids[1:2]
            assert (await http.get("/history?max_items=x")).status == 400
            await http.post("/history", json={"delete": [ids[0]]})
            assert list(await (await http.get("/history")).json()) == ids[1:]
            await http.post("/history", json={"clear": True})
            assert await (await http.get("/history")).json() == {}

    run(scenario())


def test_queue_and_history_writes_run_off_the_event_loop(server: LiveServer, monkeypatch) -> None:
    """Clearing and deleting commit with fsync; on the loop thread they would stall every WebSocket client."""
    import threading

    threads: list[threading.Thread] = []
    queue = server.engine.queue
    for name in ("clear", "delete", "clear_history", "delete_history"):
        original = getattr(queue, name)
        monkeypatch.setattr(queue, name, lambda *a, _f=original: (threads.append(threading.current_thread()), _f(*a))[1])

    async def scenario() -> None:
        async with server.session() as http:
            for route in ("/queue", "/history"):
                assert (await http.post(route, json={"clear": True, "delete": ["x"]})).status == 200
                assert (await http.post(route, json={"clear": True, "delete": "x"})).status == 400

    run(scenario())
    assert len(threads) == 4 and server._thread not in threads


def test_partially_valid_prompt_runs_valid_outputs(server: LiveServer) -> None:
    prompt = {**hello_prompt("ok"), "3": {"class_type": "DisplayText", "inputs": {}}}

    async def scenario() -> None:
        async with server.session() as http, http.ws_connect(server.ws_url("pv")) as ws:
            resp = await http.post("/prompt", json={"prompt": prompt, "client_id": "pv"})
            assert resp.status == 200
            body = await resp.json()
            assert body["node_errors"]["3"]["errors"][0]["type"] == "required_input_missing"
            await receive_until(ws, finished(body["prompt_id"]))
            history = (await (await http.get(f"/history/{body['prompt_id']}")).json())[body["prompt_id"]]
            assert history["outputs"] == {"2": {"text": ["ok"]}}

    run(scenario())


def test_invalid_prompts_get_comfy_shaped_400s(server: LiveServer) -> None:
    cases = [
        {"prompt": {"1": {"class_type": "Nope", "inputs": {}}}},
        {"prompt": {"1": {"class_type": "TextValue", "inputs": {"value": "x"}}}},
        {"prompt": {"2": {"class_type": "DisplayText", "inputs": {"text": ["9", 0]}}}},
        {"no": "prompt"},
        {"prompt": []},
    ]

    async def scenario() -> None:
        async with server.session() as http:
            for case in cases:
                resp = await http.post("/prompt", json=case)
                assert resp.status == 400, case
                body = await resp.json()
                assert set(body) == {"error", "node_errors"}
                assert set(body["error"]) >= {"type", "message", "details", "extra_info"}
            body = await (await http.post("/prompt", json=cases[0])).json()
            assert body["error"]["type"] == "missing_node_type"
            body = await (await http.post("/prompt", json=cases[2])).json()
            assert body["error"]["type"] == "prompt_outputs_failed_validation"
            assert body["node_errors"]["2"]["class_type"] == "DisplayText"
            resp = await http.post("/prompt", data=b"{not json")
            assert resp.status == 400 and (await resp.json())["error"]["type"] == "invalid_prompt"

    run(scenario())


def test_discovery_routes(server: LiveServer) -> None:
    async def scenario() -> None:
        async with server.session() as http:
            for prefix in ("", "/api"):
                info = await (await http.get(f"{prefix}/object_info")).json()
                assert "TextValue" in info and "Gate" in info
                one = await (await http.get(f"{prefix}/object_info/DisplayText")).json()
                assert list(one) == ["DisplayText"] and one["DisplayText"]["output_node"] is True
            assert await (await http.get("/object_info/Missing")).json() == {}
            stats = await (await http.get("/system_stats")).json()
            assert stats["system"]["python_version"] and stats["devices"][0]["type"] == "cpu"
            assert stats["system"]["ram_total"] > 0
            models = await (await http.get("/models")).json()
            assert "llm" in models and "checkpoints" in models
            (server.engine.home.models / "llm" / "tiny.gguf").write_text("x")
            assert await (await http.get("/models/llm")).json() == ["tiny.gguf"]
            assert (await http.get("/models/unknown")).status == 404
            (server.engine.home.models / "embeddings" / "emb.safetensors").write_text("x")
            assert await (await http.get("/embeddings")).json() == ["emb"]
            extensions = await (await http.get("/extensions")).json()
            ours = [url for url in extensions if url.startswith("/extensions/gatepack/")]
            assert ours == ["/extensions/gatepack/gate.js", "/extensions/gatepack/sub/more.js"]
            resp = await http.get(ours[1])
            assert resp.status == 200 and "gatepack sub" in await resp.text()
            assert (await http.get("/extensions/gatepack/..%2F__init__.py")).status in (403, 404)
            features = await (await http.get("/api/features")).json()
            assert features["max_upload_size"] == server.config.max_upload_bytes
            assert await (await http.get("/api/i18n")).json() == {}
            jobs = await (await http.get("/api/jobs?limit=5")).json()
            assert jobs["jobs"] == [] and jobs["pagination"]["limit"] == 5
            for path in ("/api/workflow_templates", "/api/global_subgraphs"):
                assert (await http.get(path)).status == 200
            assert await (await http.get("/api/experiment/models")).json() == []  # the frontend filters it
            assert await (await http.get("/gatepack/hello?name=x")).json() == {"hello": "x"}
            assert await (await http.get("/api/gatepack/hello")).json() == {"hello": "world"}
            assert (await http.post("/free", json={"unload_models": True, "free_memory": True})).status == 200
            assert (await http.post("/free", data=b"[")).status == 400

    run(scenario())


def test_view_and_upload(server: LiveServer) -> None:
    home = server.engine.home

    async def scenario() -> None:
        async with server.session() as http:
            for expected in ("cat.png", "cat (1).png"):
                form = aiohttp.FormData()
                form.add_field("image", b"\x89PNG-1", filename="cat.png", content_type="image/png")
                form.add_field("subfolder", "pets")
                body = await (await http.post("/upload/image", data=form)).json()
                assert body == {"name": expected, "subfolder": "pets", "type": "input"}
            form = aiohttp.FormData()
            form.add_field("image", b"\x89PNG-2", filename="cat.png", content_type="image/png")
            form.add_field("subfolder", "pets")
            form.add_field("overwrite", "true")
            assert (await (await http.post("/api/upload/image", data=form)).json())["name"] == "cat.png"
            assert (home.input / "pets" / "cat.png").read_bytes() == b"\x89PNG-2"
            resp = await http.get("/view", params={"filename": "cat.png", "subfolder": "pets", "type": "input"})
            assert resp.status == 200 and await resp.read() == b"\x89PNG-2"
            assert resp.headers["Content-Type"] == "image/png"
            (home.output / "page.html").write_text("<script>alert(1)</script>")
            resp = await http.get("/view", params={"filename": "page.html"})
            assert resp.headers["Content-Type"] == "application/octet-stream"
            assert resp.headers["Content-Disposition"].startswith("attachment")
            assert (await http.get("/view", params={"filename": "cat.png [input]", "subfolder": "pets"})).status == 200
            assert (await http.get("/view", params={"filename": "missing.png"})).status == 404
            assert (await http.get("/view", params={"filename": "x", "type": "models"})).status == 400
            form = aiohttp.FormData()
            form.add_field("image", b"mask", filename="cat.png", content_type="image/png")
            form.add_field("original_ref", json.dumps({"filename": "cat.png", "subfolder": "pets"}))
            form.add_field("subfolder", "pets")
            assert (await (await http.post("/upload/mask", data=form)).json())["name"] == "cat.png"
            assert (await http.post("/upload/image", data=aiohttp.FormData({"x": "1"}))).status == 400
            assert (await http.post("/upload/image", json={})).status == 400

    run(scenario())


def test_upload_size_limit(server_factory) -> None:
    server = server_factory(max_upload_bytes=64 * 1024)

    async def scenario() -> None:
        async with server.session() as http:
            form = aiohttp.FormData()
            form.add_field("image", b"x" * (200 * 1024), filename="big.png", content_type="image/png")
            resp = await http.post("/upload/image", data=form)
            assert resp.status == 413
            assert (await resp.json())["error"]["type"] == "http_error"
            assert not (server.engine.home.input / "big.png").exists()
            resp = await http.post("/prompt", data=b"{" + b" " * (100 * 1024) + b"}")
            assert resp.status == 413

    run(scenario())


def test_users_settings_userdata(server: LiveServer) -> None:
    async def scenario() -> None:
        async with server.session() as http:
            assert await (await http.get("/users")).json() == {"storage": "server", "migrated": True}
            assert await (await http.get("/settings")).json() == {}
            await http.post("/settings", json={"Comfy.A": 1, "Comfy.B": "x"})
            await http.post("/api/settings/Comfy.InstalledVersion", json="1.58.1")
            settings = await (await http.get("/settings")).json()
            assert settings == {"Comfy.A": 1, "Comfy.B": "x", "Comfy.InstalledVersion": "1.58.1"}
            assert await (await http.get("/settings/Comfy.B")).json() == "x"
            assert await (await http.get("/settings/Missing")).json() is None
            stored = server.engine.home.user / "default" / "comfy.settings.json"
            assert json.loads(stored.read_text())["Comfy.A"] == 1

            workflow = json.dumps({"nodes": [], "links": []}).encode()
            resp = await http.post("/userdata/workflows%2Fa.json", data=workflow)
            assert resp.status == 200 and await resp.json() == "workflows/a.json"
            resp = await http.post("/userdata/workflows%2Fa.json?overwrite=false", data=b"{}")
            assert resp.status == 409
            info = await (await http.post("/api/userdata/workflows%2Fdeep%2Fb.json?full_info=true",
                                          data=b"{}")).json()
            assert info["path"] == "workflows/deep/b.json" and info["size"] == 2
            assert await (await http.get("/userdata?dir=workflows")).json() == ["a.json"]
            assert await (await http.get("/userdata?dir=workflows&recurse=true")).json() == \
                ["a.json", "deep/b.json"]
            split = await (await http.get("/userdata?dir=workflows&recurse=true&split=true")).json()
            assert split == [["a.json", "a.json"], ["deep/b.json", "deep", "b.json"]]
            full = await (await http.get("/userdata?dir=workflows&full_info=true")).json()
            assert full[0]["path"] == "a.json" and full[0]["size"] == len(workflow)
            assert (await http.get("/userdata")).status == 400
            assert (await http.get("/userdata?dir=nothing")).status == 404
            dangling = server.engine.home.user / "default" / "workflows" / "gone.json"
            dangling.symlink_to(dangling.with_name("deleted.json"))
            v2 = await (await http.get("/api/v2/userdata?path=workflows")).json()
            assert [(e["name"], e["type"]) for e in v2] == [("a.json", "file"), ("deep", "directory")]
            dangling.unlink()
            assert await (await http.get("/userdata/workflows%2Fa.json")).read() == workflow
            await http.post("/userdata/page.html", data=b"<script>alert(1)</script>")
            resp = await http.get("/userdata/page.html")
            assert resp.headers["Content-Type"] == "application/octet-stream"
            assert resp.headers["Content-Disposition"].startswith("attachment")
            resp = await http.post("/userdata/workflows%2Fa.json/move/workflows%2Fc.json")
            assert resp.status == 200 and await resp.json() == "workflows/c.json"
            assert (await http.get("/userdata/workflows%2Fa.json")).status == 404
            resp = await http.post("/userdata/workflows%2Fc.json/move/workflows%2Fdeep%2Fb.json?overwrite=false")
            assert resp.status == 409
            assert (await http.delete("/userdata/workflows%2Fc.json")).status == 204
            assert (await http.delete("/userdata/workflows%2Fc.json")).status == 404

    run(scenario())


def test_multi_user_separation(server_factory) -> None:
    server = server_factory(multi_user=True)

    async def scenario() -> None:
        async with server.session() as http:
            alice = await (await http.post("/users", json={"username": "alice"})).json()
            bob = await (await http.post("/users", json={"username": "bob"})).json()
            assert (await http.post("/users", json={"username": "alice"})).status == 400
            users = await (await http.get("/users")).json()
            assert users["storage"] == "server" and set(users["users"]) == {alice, bob}
            await http.post("/settings", json={"theme": "dark"}, headers={"comfy-user": alice})
            await http.post("/userdata/secret.json", data=b"alice", headers={"comfy-user": alice})
            assert await (await http.get("/settings", headers={"comfy-user": bob})).json() == {}
            assert (await http.get("/userdata/secret.json", headers={"comfy-user": bob})).status == 404
            assert await (await http.get("/userdata/secret.json", headers={"comfy-user": alice})).read() == b"alice"
            assert (await http.get("/userdata/..%2F" + alice + "%2Fsecret.json",
                                   headers={"comfy-user": bob})).status == 403
            assert (await http.get("/settings", headers={"comfy-user": "mallory"})).status == 403
            assert (await http.get("/settings", headers={"comfy-user": "../default"})).status == 403

    run(scenario())


def test_workflow_templates_offer_partyflow_starters_and_packs_examples(server: LiveServer) -> None:
    examples = server.engine.home.custom_nodes / "gatepack" / "example_workflows"
    examples.mkdir()
    (examples / "gate_demo.json").write_text(json.dumps({"nodes": [], "links": []}))
    (examples / "gate_demo.jpg").write_bytes(b"\xff\xd8jpeg")
    (examples / "notes.txt").write_text("not a template")

    async def scenario() -> None:
        async with server.session() as http:
            listed = await (await http.get("/api/workflow_templates")).json()
            assert listed == {"partyflow": ["partyflow_hello"], "gatepack": ["gate_demo"]}
            starter = await (await http.get("/api/workflow_templates/partyflow/partyflow_hello.json")).json()
            types = {node["type"] for node in starter["nodes"]}
            info = await (await http.get("/object_info")).json()
            assert types - {"Note"} <= set(info)  # every node of the starter exists here
            resp = await http.get("/api/workflow_templates/gatepack/gate_demo.jpg")
            assert resp.status == 200 and resp.headers["Content-Type"] == "image/jpeg"
            assert (await http.get("/api/workflow_templates/gatepack/notes.txt")).status == 404
            assert (await http.get("/api/workflow_templates/gatepack/..%2F__init__.json")).status in (403, 404)
            assert (await http.get("/api/workflow_templates/..%2Fgatepack/gate_demo.json")).status == 404
            assert (await http.get("/api/workflow_templates/nope/x.json")).status == 404

    run(scenario())


def test_user_css_answers_for_a_fresh_user_and_serves_a_saved_one(server: LiveServer) -> None:
    async def scenario() -> None:
        async with server.session() as http:
            resp = await http.get("/user.css")
            assert resp.status == 200 and resp.content_type == "text/css" and await resp.read() == b""
            await http.post("/userdata/user.css", data=b"body { color: red }")
            assert await (await http.get("/user.css")).read() == b"body { color: red }"

    run(scenario())
