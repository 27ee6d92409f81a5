"""partyflow's messages in ComfyUI 0.3.75's shapes, case by case (issue 11, "On the wire"), on a live server.

Each test names the ComfyUI shape it checks; where partyflow deliberately answers differently, docs/serving.md says
why and the test checks partyflow's documented answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.server.live import LiveServer, finished, hello_prompt, receive_until, run, start_server

from partyflow import Engine
from partyflow.server import ServerConfig

NODE_STATE_KEYS = {"value", "max", "state", "node_id", "prompt_id", "display_node_id", "parent_node_id",
                   "real_node_id"}


@pytest.fixture
def llm_server(home: Path) -> Iterator[LiveServer]:
    engine = Engine(home=home, builtin_packs=("core", "llm"))
    live = start_server(engine, ServerConfig(port=0, shutdown_grace_s=1.0))
    yield live
    live.stop()
    engine.close()


async def _run(server: LiveServer, prompt: dict[str, Any], client: str = "wire") -> tuple[dict, list[dict]]:
    async with server.session() as http, http.ws_connect(server.ws_url(client)) as ws:
        await ws.receive_json()
        reply = await http.post("/prompt", json={"prompt": prompt, "client_id": client})
        body = await reply.json()
        assert reply.status == 200, body
        messages = await receive_until(ws, finished(body["prompt_id"]))
        return body, messages


def test_prompt_number_is_an_integer_in_the_reply_queue_and_history(server: LiveServer) -> None:
    body, _ = run(_run(server, hello_prompt()))
    assert type(body["number"]) is int

    async def history() -> dict:
        async with server.session() as http:
            return await (await http.get(f"/history/{body['prompt_id']}")).json()

    entry = run(history())[body["prompt_id"]]
    assert type(entry["prompt"][0]) is int


def test_history_meta_holds_only_node_entries(server: LiveServer) -> None:
    body, _ = run(_run(server, hello_prompt()))

    async def history() -> dict:
        async with server.session() as http:
            return await (await http.get(f"/history/{body['prompt_id']}")).json()

    meta = run(history())[body["prompt_id"]]["meta"]
    assert set(meta) == {"2"}  # the node with a ui result, as ComfyUI keys it; no "timings"
    assert {"node_id", "display_node", "parent_node", "real_node_id"} <= set(meta["2"])


def test_system_stats_versions(server: LiveServer) -> None:
    async def stats() -> dict:
        async with server.session() as http:
            return await (await http.get("/system_stats")).json()

    system = run(stats())["system"]
    major, minor, patch = system["comfyui_version"].split(".")
    assert (int(major), int(minor), int(patch)) >= (0, 3, 75)
    assert system["partyflow_version"] and system["comfyui_version"] != system["partyflow_version"]
    assert isinstance(system["pytorch_version"], str)


def test_execution_error_lists_outputs_and_gives_inputs(server: LiveServer) -> None:
    prompt = {"1": {"class_type": "TextValue", "inputs": {"value": "{not json"}},
              "2": {"class_type": "JSONParse", "inputs": {"text": ["1", 0]}},
              "3": {"class_type": "DisplayValue", "inputs": {"value": ["2", 0]}}}
    _, messages = run(_run(server, prompt))
    error = next(m["data"] for m in messages if m["type"] == "execution_error")
    assert error["node_id"] == "2" and error["node_type"] == "JSONParse"
    assert error["current_outputs"] == ["1"]  # ComfyUI: a list of node ids
    assert error["current_inputs"] == {"text": ["{not json"]}  # per input, the list of values the node got
    assert error["executed"] == ["1"]
    assert {"prompt_id", "exception_message", "exception_type", "traceback", "timestamp"} <= set(error)


def test_custom_validation_names_the_input(llm_server: LiveServer) -> None:
    prompt = {"1": {"class_type": "APIModelLoader", "inputs": {"provider": "nowhere"}},
              "2": {"class_type": "DisplayValue", "inputs": {"value": ["1", 0]}}}

    async def refused() -> dict:
        async with llm_server.session() as http:
            reply = await http.post("/prompt", json={"prompt": prompt})
            assert reply.status == 400
            return await reply.json()

    body = run(refused())
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    (issue,) = body["node_errors"]["1"]["errors"]
    assert issue["type"] == "custom_validation_failed" and issue["message"] == "Custom validation failed for node"
    assert issue["details"].startswith("provider - ") and "nowhere" in issue["details"]
    assert issue["extra_info"]["input_name"] == "provider"
    assert issue["extra_info"]["received_value"] == "nowhere" and "input_config" in issue["extra_info"]


def test_out_of_range_input_has_extra_info(server: LiveServer) -> None:
    prompt = {"1": {"class_type": "WhileLoopClose", "inputs": {"flow_control": ["2", 0], "condition": True,
                                                              "max_iterations": 0}},
              "2": {"class_type": "WhileLoopOpen", "inputs": {}},
              "3": {"class_type": "DisplayValue", "inputs": {"value": ["1", 0]}}}

    async def refused() -> dict:
        async with server.session() as http:
            return await (await http.post("/prompt", json={"prompt": prompt})).json()

    issue = run(refused())["node_errors"]["1"]["errors"][0]
    assert issue["type"] == "value_smaller_than_min"
    assert issue["extra_info"]["input_name"] == "max_iterations" and issue["extra_info"]["received_value"] == 0
    assert issue["extra_info"]["input_config"][0] == "INT"


def test_execution_cached_lists_every_cached_node_on_a_full_hit(server: LiveServer) -> None:
    prompt = {"1": {"class_type": "TextValue", "inputs": {"value": "a"}},
              "2": {"class_type": "TextCase", "inputs": {"text": ["1", 0], "case": "upper"}},
              "3": {"class_type": "DisplayText", "inputs": {"text": ["2", 0]}}}
    run(_run(server, prompt))
    _, messages = run(_run(server, prompt))
    cached = next(m["data"] for m in messages if m["type"] == "execution_cached")
    assert sorted(cached["nodes"]) == ["1", "2", "3"]


def test_progress_state_shape(server: LiveServer) -> None:
    body, messages = run(_run(server, hello_prompt()))
    states = [m["data"] for m in messages if m["type"] == "progress_state"]
    assert states and all(s["prompt_id"] == body["prompt_id"] for s in states)
    last = states[-1]["nodes"]
    assert set(last) == {"1", "2"}
    for node_id, state in last.items():
        assert set(state) == NODE_STATE_KEYS
        assert state["state"] == "finished" and state["node_id"] == node_id and state["value"] == state["max"]


def test_internal_routes(server: LiveServer) -> None:
    (server.engine.home.output / "a.txt").write_text("a")

    async def scenario() -> None:
        async with server.session() as http:
            for prefix in ("", "/api"):
                logs = await http.get(f"{prefix}/internal/logs")
                assert logs.status == 200 and isinstance(await logs.json(), str)
                raw = await (await http.get(f"{prefix}/internal/logs/raw")).json()
                assert set(raw) == {"entries", "size"} and set(raw["size"]) == {"cols", "rows"}
                assert all(set(e) == {"t", "m"} for e in raw["entries"])
            folders = await (await http.get("/internal/folder_paths")).json()
            assert folders and all(isinstance(paths, list) for paths in folders.values())
            assert await (await http.get("/internal/files/output")).json() == ["a.txt"]
            assert (await http.get("/internal/files/secrets")).status == 400
            subscribed = await http.patch("/internal/logs/subscribe", json={"enabled": True, "clientId": "c"})
            assert subscribed.status == 200
            assert (await http.patch("/internal/logs/subscribe", json={"enabled": True})).status == 400

    run(scenario())


def test_logs_reach_the_buffer_and_subscribers_without_secrets(server_factory) -> None:
    import logging

    live = server_factory(token="s3cret-token-value")
    live.headers["Authorization"] = "Bearer s3cret-token-value"

    async def scenario() -> None:
        async with live.session() as http, http.ws_connect(live.ws_url("logs")) as ws:
            await ws.receive_json()
            assert (await http.patch("/internal/logs/subscribe", json={"enabled": True, "clientId": "logs"})).ok
            logger = logging.getLogger("partyflow.test.wire")
            logger.setLevel(logging.INFO)
            logger.info("visible line with s3cret-token-value inside")
            seen = await receive_until(ws, lambda m: m["type"] == "logs")
            line = seen[-1]["data"]["entries"][0]["m"]
            assert "visible line" in line and "s3cret-token-value" not in line
            text = await (await http.get("/internal/logs")).json()
            assert "visible line with *** inside" in text

    run(scenario())
