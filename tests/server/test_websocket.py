"""WebSocket messages: ComfyUI's sequence for a prompt, routing to the queuing client, and the third-party
`comfy-api-simplified` client running a workflow end to end."""

from __future__ import annotations

import asyncio

from comfy_api_simplified import ComfyApiWrapper
from tests.server.live import LiveServer, finished, hello_prompt, receive_until, run


def test_message_sequence_for_a_prompt(server: LiveServer) -> None:
    async def scenario() -> list[dict]:
        async with server.session() as http, http.ws_connect(server.ws_url("seq")) as ws:
            hello = await ws.receive_json()
            assert hello == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}},
                                                        "sid": "seq"}}
            body = await (await http.post("/prompt", json={"prompt": hello_prompt("shown"),
                                                           "client_id": "seq"})).json()
            return await receive_until(ws, finished(body["prompt_id"]))

    messages = run(scenario())
    kinds = [m["type"] for m in messages if m["type"] not in ("status", "progress_state")]
    assert kinds == ["execution_start", "execution_cached", "executing", "executing", "executed",
                     "execution_success", "executing"]
    # the node state table the editor highlights from: paced, but its final form always precedes the end
    states = [m for m in messages if m["type"] == "progress_state"]
    assert states and messages.index(states[-1]) < [m["type"] for m in messages].index("execution_success")
    assert {n: s["state"] for n, s in states[-1]["data"]["nodes"].items()} == {"1": "finished", "2": "finished"}
    executing = [m["data"]["node"] for m in messages if m["type"] == "executing"]
    assert executing[-1] is None and sorted(executing[:-1]) == ["1", "2"]
    executed = next(m["data"] for m in messages if m["type"] == "executed")
    assert executed["node"] == "2" and executed["output"] == {"text": ["shown"]}
    assert set(executed) == {"node", "display_node", "output", "prompt_id"}
    statuses = [m["data"]["status"]["exec_info"]["queue_remaining"] for m in messages if m["type"] == "status"]
    assert statuses and statuses[-1] == 0
    cached = next(m["data"] for m in messages if m["type"] == "execution_cached")
    assert cached["nodes"] == []

    async def again() -> list[dict]:
        async with server.session() as http, http.ws_connect(server.ws_url("seq")) as ws:
            await ws.receive_json()
            body = await (await http.post("/prompt", json={"prompt": hello_prompt("shown"),
                                                           "client_id": "seq"})).json()
            return await receive_until(ws, finished(body["prompt_id"]))

    second = run(again())
    assert "2" in next(m["data"]["nodes"] for m in second if m["type"] == "execution_cached")


def test_execution_messages_go_only_to_the_queuing_client(server: LiveServer) -> None:
    async def scenario() -> None:
        async with server.session() as http, http.ws_connect(server.ws_url("mine")) as mine, \
                http.ws_connect(server.ws_url("other")) as other:
            await mine.receive_json()
            await other.receive_json()
            body = await (await http.post("/prompt", json={"prompt": hello_prompt("private"),
                                                           "client_id": "mine"})).json()
            await receive_until(mine, finished(body["prompt_id"]))
            # The other client sees queue status only; a marker prompt it queued itself ends its stream.
            marker = await (await http.post("/prompt", json={"prompt": hello_prompt("marker"),
                                                             "client_id": "other"})).json()
            seen = await receive_until(other, finished(marker["prompt_id"]))
            leaked = [m for m in seen if m["data"].get("prompt_id") == body["prompt_id"]]
            assert leaked == []
            assert any(m["type"] == "status" for m in seen)

    run(scenario())


def test_failing_prompt_reports_execution_error(server: LiveServer) -> None:
    prompt = {"1": {"class_type": "JSONParse", "inputs": {"text": "{not json"}},
              "2": {"class_type": "DisplayValue", "inputs": {"value": ["1", 0]}}}

    async def scenario() -> list[dict]:
        async with server.session() as http, http.ws_connect(server.ws_url("err")) as ws:
            resp = await http.post("/prompt", json={"prompt": prompt, "client_id": "err"})
            assert resp.status == 200, await resp.text()
            body = await resp.json()
            return await receive_until(ws, finished(body["prompt_id"]))

    messages = run(scenario())
    error = next(m["data"] for m in messages if m["type"] == "execution_error")
    assert error["node_id"] == "1" and error["node_type"] == "JSONParse" and error["exception_message"]


def test_pack_custom_messages_reach_the_client(server: LiveServer) -> None:
    prompt = {"1": {"class_type": "Usage", "inputs": {"provider": "acme", "tokens": 5}}}

    async def scenario() -> list[dict]:
        async with server.session() as http, http.ws_connect(server.ws_url("u")) as ws:
            body = await (await http.post("/prompt", json={"prompt": prompt, "client_id": "u"})).json()
            messages = await receive_until(ws, finished(body["prompt_id"]))
            metrics = await (await http.get("/metrics")).text()
            assert 'partyflow_llm_tokens_total{kind="prompt",provider="acme"} 5.0' in metrics
            assert 'partyflow_llm_tokens_total{kind="completion",provider="acme"} 10.0' in metrics
            assert 'partyflow_llm_cost_total{provider="acme"} 0.5' in metrics
            assert 'partyflow_node_duration_seconds_count{class_type="Usage"} 1.0' in metrics
            assert 'partyflow_prompts_finished_total{status="success"} 1.0' in metrics
            assert "partyflow_prompts_queued_total 1.0" in metrics
            assert "partyflow_websocket_clients 1.0" in metrics
            return messages

    messages = run(scenario())
    usage = next(m for m in messages if m["type"] == "partyflow.llm.usage")
    assert usage["data"]["provider"] == "acme"


def test_comfy_api_simplified_client(server: LiveServer) -> None:
    api = ComfyApiWrapper(server.url)
    assert "TextValue" in api.get_object_info()
    assert api.get_system_stats()["devices"]
    prompt_id, images = asyncio.run(api.queue_prompt_and_wait(hello_prompt("from a real client")))
    assert images == []
    history = api.get_history(prompt_id)
    assert history[prompt_id]["outputs"]["2"] == {"text": ["from a real client"]}
    assert api.get_queue() == {"queue_running": [], "queue_pending": []}
    api.interrupt()
