"""/api/jobs as the ComfyUI frontend's queue panel uses it, backed by the real queue and history on a live server."""

from __future__ import annotations

from pathlib import Path

from tests.server.live import LiveServer, finished, hello_prompt, receive_until, run

JOB_KEYS = {"id", "status", "priority", "create_time", "outputs_count"}


def gated(label: str, gate: Path) -> dict:
    return {"1": {"class_type": "Gate", "inputs": {"label": label, "release": str(gate)}}}


def failing() -> dict:
    return {"1": {"class_type": "JSONParse", "inputs": {"text": "{not json"}},
            "2": {"class_type": "DisplayValue", "inputs": {"value": ["1", 0]}}}


def test_jobs_list_every_state_with_pagination_sorting_and_cancel(server: LiveServer, tmp_path: Path) -> None:
    gate = tmp_path / "release"

    async def scenario() -> None:
        async with server.session() as http, http.ws_connect(server.ws_url("j")) as ws:
            done = await (await http.post("/prompt", json={"prompt": hello_prompt("one"), "prompt_id": "done",
                                                           "client_id": "j"})).json()
            await receive_until(ws, finished(done["prompt_id"]))
            await http.post("/prompt", json={"prompt": failing(), "prompt_id": "bad", "client_id": "j"})
            await receive_until(ws, finished("bad"))
            await http.post("/prompt", json={"prompt": gated("run", gate), "prompt_id": "run", "client_id": "j",
                                             "extra_data": {"extra_pnginfo": {"workflow": {"id": "wf-1"}}}})
            await receive_until(ws, lambda m: m["type"] == "executing" and m["data"]["node"] == "1")
            for name in ("p1", "p2"):
                assert (await http.post("/prompt", json={"prompt": gated(name, gate), "prompt_id": name})).ok

            listing = await (await http.get("/api/jobs")).json()
            by_id = {job["id"]: job for job in listing["jobs"]}
            assert {i: j["status"] for i, j in by_id.items()} == {
                "done": "completed", "bad": "failed", "run": "in_progress", "p1": "pending", "p2": "pending"}
            assert all(JOB_KEYS <= set(job) for job in listing["jobs"])
            assert [j["id"] for j in listing["jobs"]] == ["p2", "p1", "run", "bad", "done"]  # newest first
            assert listing["pagination"] == {"offset": 0, "limit": None, "total": 5, "has_more": False}
            assert isinstance(by_id["done"]["priority"], int)
            assert by_id["done"]["execution_end_time"] >= by_id["done"]["execution_start_time"] > 0
            assert by_id["bad"]["execution_error"]["node_id"] == "1"
            assert by_id["run"]["workflow_id"] == "wf-1" and by_id["run"]["execution_start_time"] > 0

            # what the queue panel asks for: the live ones, then history page by page
            live = await (await http.get("/api/jobs?status=in_progress,pending&limit=200&offset=0")).json()
            assert [j["id"] for j in live["jobs"]] == ["p2", "p1", "run"]
            page = await (await http.get("/api/jobs?status=completed,failed,cancelled&limit=1&offset=1")).json()
            assert [j["id"] for j in page["jobs"]] == ["done"]
            assert page["pagination"] == {"offset": 1, "limit": 1, "total": 2, "has_more": False}
            oldest = await (await http.get("/api/jobs?sort_order=asc&limit=2")).json()
            assert [j["id"] for j in oldest["jobs"]] == ["done", "bad"] and oldest["pagination"]["has_more"]
            assert (await (await http.get("/api/jobs?workflow_id=wf-1")).json())["pagination"]["total"] == 1

            detail = await (await http.get("/api/jobs/done")).json()
            assert detail["outputs"] == {"2": {"text": ["one"]}}
            assert detail["execution_status"]["status_str"] == "success"
            assert detail["workflow"]["prompt"] == hello_prompt("one")
            assert (await (await http.get("/api/jobs/run")).json())["status"] == "in_progress"
            assert (await http.get("/api/jobs/nope")).status == 404

            # cancel: a pending job goes to history as cancelled, the running one is interrupted
            assert (await (await http.post("/api/jobs/p1/cancel")).json())["status"] == "cancelled"
            both = await (await http.post("/api/jobs/cancel", json={"job_ids": ["run", "done", "x"]})).json()
            assert [(j["id"], j["cancelled"]) for j in both["jobs"]] == [("run", True), ("done", False),
                                                                          ("x", False)]
            await receive_until(ws, finished("run"))
            gate.write_text("go")
            await receive_until(ws, lambda m: m["type"] == "status"
                                and m["data"]["status"]["exec_info"]["queue_remaining"] == 0, timeout=30)
            states = {j["id"]: j["status"] for j in (await (await http.get("/api/jobs")).json())["jobs"]}
            assert states == {"done": "completed", "bad": "failed", "run": "cancelled", "p1": "cancelled",
                              "p2": "completed"}
            assert "p1" not in [i[1] for i in (await (await http.get("/queue")).json())["queue_pending"]]
            assert (await http.post("/api/jobs/nope/cancel")).status == 404

    run(scenario())


def test_jobs_query_errors_are_400s(server: LiveServer) -> None:
    async def scenario() -> None:
        async with server.session() as http:
            for query in ("status=running", "limit=0", "limit=x", "offset=-1", "sort_by=name", "sort_order=up"):
                resp = await http.get(f"/api/jobs?{query}")
                assert resp.status == 400, query
                assert (await resp.json())["error"]["details"]
            assert (await http.post("/api/jobs/cancel", json={"job_ids": "a"})).status == 400

    run(scenario())
