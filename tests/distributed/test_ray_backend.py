"""The Ray backend on a real local cluster: same results as the local backend, events streamed back, a worker
killed mid-prompt, resource-declaring nodes placed where the resource is, and the server running on it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.distributed.conftest import RayRig

from partyflow.distributed.dispatch import Dispatcher
from partyflow.engine.events import (
    CustomMessage,
    Event,
    Executed,
    ExecutionStart,
    ExecutionSuccess,
)

EXAMPLES = Path(__file__).parents[2] / "examples"


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}


WORKFLOWS: dict[str, Any] = {
    "hello": EXAMPLES / "hello.json",
    "word_stats": EXAMPLES / "word_stats.json",
    "countdown_loop": EXAMPLES / "countdown_loop.json",
    "lazy_switch": {"1": node("BooleanValue", value=False), "2": node("TextValue", value="yes"),
                    "3": node("TextValue", value="no"),
                    "4": node("LazySwitch", condition=["1", 0], on_true=["2", 0], on_false=["3", 0]),
                    "5": node("DisplayText", text=["4", 0])},
    "failing": {"1": node("TextValue", value="{not json"), "2": node("JSONParse", text=["1", 0]),
                "3": node("DisplayText", text=["1", 0])},
}


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text as {(name, sorted labels): value}, read with prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def submit_and_claim(rig: RayRig, workflow: Any):
    item = rig.engine.submit(workflow)
    claimed = rig.engine.queue.claim()
    assert claimed is not None and claimed.prompt_id == item.prompt_id
    return claimed


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_results_match_the_local_backend(rig: RayRig, name: str) -> None:
    workflow = WORKFLOWS[name]
    local = rig.engine.run(workflow, strict=False)
    item = submit_and_claim(rig, workflow)
    events: list[Event] = []
    remote = rig.run(rig.backend.run(item, events.append))
    rig.engine.queue.finish(item, outputs=remote.outputs, status=remote.history_status())
    assert remote.status == local.status
    assert remote.outputs == local.outputs
    assert sorted(remote.executed) == sorted(local.executed)
    assert remote.node_outputs == local.node_outputs
    assert (remote.error is None) == (local.error is None)
    if local.error is not None:
        assert (remote.error.node_id, remote.error.exception_type) == (local.error.node_id, local.error.exception_type)
    # the worker's events arrive as the typed events the server forwards, in the order ComfyUI sends them
    assert isinstance(events[0], ExecutionStart) and events[0].prompt_id == item.prompt_id
    kinds = [type(e).__name__ for e in events]
    assert ("ExecutionSuccess" in kinds) == (local.status == "success")
    assert remote.meta["backend"]["name"] == "ray" and remote.meta["backend"]["attempts"] == 1


def test_dispatcher_runs_queued_prompts_on_both_workers_and_records_each_once(rig: RayRig) -> None:
    prompts = [rig.engine.submit(WORKFLOWS["hello"], prompt_id=f"many-{i}") for i in range(6)]
    finished: list[str] = []
    seen: list[Event] = []
    unsubscribe = rig.engine.subscribe(seen.append)

    async def serve() -> None:
        stop = asyncio.Event()

        def done(item, result) -> None:
            finished.append(item.prompt_id)
            if len(finished) == len(prompts):
                stop.set()

        await Dispatcher(rig.engine, rig.backend, on_finish=done).serve(stop)

    try:
        rig.run(serve())
    finally:
        unsubscribe()
    assert sorted(finished) == sorted(p.prompt_id for p in prompts)
    history = rig.engine.queue.history()
    for prompt in prompts:
        entry = history[prompt.prompt_id]
        assert entry["status"]["status_str"] == "success"
        assert entry["outputs"]["show"]["text"] == ["Hello, world! Welcome to partyflow."]
    assert {e.prompt_id for e in seen if isinstance(e, ExecutionSuccess)} >= {p.prompt_id for p in prompts}
    assert any(isinstance(e, Executed) and e.node == "show" for e in seen)
    assert rig.engine.queue.remaining() == 0


def test_a_worker_killed_mid_prompt_is_retried_elsewhere_and_recorded_once(rig: RayRig, tmp_path: Path) -> None:
    marker = rig.engine.home.temp / "kill-test"
    marker.mkdir()
    workflow = {"1": node("BlockFirstRun", folder=str(marker), text="survived"), "2": node("DisplayText", text=["1", 0])}
    item = submit_and_claim(rig, workflow)
    killed: list[int] = []
    events: list[Event] = []

    def on_event(event: Event) -> None:
        events.append(event)
        if isinstance(event, CustomMessage) and event.event == "raytest.blocking" and not killed:
            killed.append(event.data["pid"])
            os.kill(event.data["pid"], signal.SIGKILL)

    unsubscribe = rig.engine.subscribe(on_event)
    try:
        result = rig.run(Dispatcher(rig.engine, rig.backend).run_item(item))
    finally:
        unsubscribe()
    assert killed, "the node never announced itself"
    assert result.status == "success", result.error
    text = result.outputs["2"]["text"][0]
    assert text.startswith("survived from ") and int(text.rpartition(" ")[2]) != killed[0]
    assert result.meta["backend"]["attempts"] == 2
    history = rig.engine.queue.history(item.prompt_id)
    assert list(history) == [item.prompt_id]
    assert history[item.prompt_id]["outputs"]["2"]["text"] == [text]
    assert rig.engine.queue.running() == []
    assert sum(isinstance(e, ExecutionStart) for e in events) == 2  # the client saw the retry start over


def test_a_resource_declaring_node_runs_only_where_the_resource_is(rig: RayRig) -> None:
    workflow = {"1": node("WhereSpecial", seed=1), "2": node("DisplayText", text=["1", 0]),
                "3": node("WherePlain", seed=1), "4": node("DisplayText", text=["3", 0])}
    result = rig.run(rig.backend.run(submit_and_claim(rig, workflow), lambda e: None))
    assert result.status == "success", result.error
    special = json.loads(result.outputs["2"]["text"][0])
    plain = json.loads(result.outputs["4"]["text"][0])
    assert "special" in special["resources"]  # Ray granted the node's actor the resource it declared
    assert "special" not in plain["resources"]
    assert special["pid"] != plain["pid"]  # the special node ran on its node actor, not in the prompt worker
    assert plain["pid"] == result.meta["backend"]["pid"]


def test_a_resource_no_node_offers_fails_the_node_with_the_resource_named(rig: RayRig) -> None:
    workflow = {"1": node("NeedsAbsent", seed=1), "2": node("DisplayText", text=["1", 0])}
    result = rig.run(rig.backend.run(submit_and_claim(rig, workflow), lambda e: None))
    assert result.status == "error"
    assert result.error.node_id == "1" and result.error.exception_type == "InfeasibleResources"
    assert "absent_accelerator" in result.error.message


def test_status_lists_workers_running_prompts_and_node_actors(rig: RayRig) -> None:
    status = rig.run(rig.backend.status())
    assert status["backend"] == "ray" and status["healthy"] is True
    assert [w["id"] for w in status["workers"]] == ["partyflow-worker-0", "partyflow-worker-1"]
    assert all(w["alive"] and w["running"] == [] and w["models"] == [] for w in status["workers"])
    assert any("special" in actor["resources"] for actor in status["node_actors"])
    assert status["cluster_resources"]["special"] == 1


def test_the_private_cluster_is_bound_to_loopback(rig: RayRig) -> None:
    import ray

    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert [n["NodeManagerAddress"] for n in nodes] == ["127.0.0.1"]
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")


def test_the_server_runs_prompts_on_ray_with_the_same_websocket_messages(rig: RayRig, tmp_path: Path) -> None:
    """`partyflow serve` with `backend = "ray"`: same HTTP/WebSocket API; its workers live in their own namespace
    on the module's cluster (a server joins a cluster this process already has), and leave with the server."""
    from tests.server.live import finished, hello_prompt, receive_until, start_server

    from partyflow import Engine
    from partyflow.server import ServerConfig

    home = tmp_path / "server-home"
    home.mkdir()
    (home / "config.toml").write_text('[engine]\nbackend = "ray"\nray_workers = 2\nray_namespace = "served"\n',
                                      encoding="utf-8")
    engine = Engine(home, builtin_packs=("core",))
    live = start_server(engine, ServerConfig(port=0, shutdown_grace_s=5.0))

    async def scenario() -> None:
        async with live.session() as http, http.ws_connect(live.ws_url("c1")) as ws:
            ids = []
            for n in range(3):
                resp = await http.post("/prompt", json={"prompt": hello_prompt(f"hi {n}"), "client_id": "c1"})
                assert resp.status == 200, await resp.text()
                ids.append((await resp.json())["prompt_id"])
            done: set[str] = set()

            def all_finished(message: dict[str, Any]) -> bool:  # two workers: prompts may end in any order
                if any(finished(prompt_id)(message) for prompt_id in ids):
                    done.add(message["data"]["prompt_id"])
                return done == set(ids)

            messages = await receive_until(ws, all_finished, timeout=60)
            for n, prompt_id in enumerate(ids):
                mine = [m["type"] for m in messages if m["data"].get("prompt_id") == prompt_id]
                assert mine[0] == "execution_start" and "execution_success" in mine and mine[-1] == "executing"
                executed = [m for m in messages if m["type"] == "executed" and m["data"]["prompt_id"] == prompt_id]
                assert executed[0]["data"]["output"] == {"text": [f"hi {n}"]}
                history = await (await http.get(f"/history/{prompt_id}")).json()
                assert history[prompt_id]["outputs"] == {"2": {"text": [f"hi {n}"]}}
                assert history[prompt_id]["meta"]["backend"]["name"] == "ray"
            status = await (await http.get("/partyflow/backend")).json()
            assert status["backend"] == "ray" and status["running"] == []
            assert sorted(w["id"] for w in status["workers"]) == ["partyflow-worker-0", "partyflow-worker-1"]
            assert {w["home"] for w in status["workers"]} == {str(engine.home.root)}
            assert await (await http.get("/prompt")).json() == {"exec_info": {"queue_remaining": 0}}
            metrics = parse_metrics(await (await http.get("/metrics")).text())
            assert metrics[("partyflow_ray_up", ())] == 1.0
            workers = ("partyflow-worker-0", "partyflow-worker-1")
            done = [metrics[("partyflow_ray_worker_prompts_total", (("status", "done"), ("worker", w)))]
                    for w in workers]
            assert sum(done) == 3
            for w in workers:
                assert metrics[("partyflow_ray_worker_prompts_running", (("worker", w),))] == 0
                assert metrics[("partyflow_ray_worker_prompts_total", (("status", "failed"), ("worker", w)))] == 0
                assert ("partyflow_ray_worker_cache_hits_total", (("worker", w),)) in metrics
                assert metrics[("partyflow_ray_worker_deaths_total", (("worker", w),))] == 0
            shown = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "partyflow", "ray", "status",
                                                             "--url", live.url], capture_output=True, text=True,
                                            timeout=60, env={**os.environ, "COLUMNS": "200"})
            assert shown.returncode == 0, shown.stderr
            assert "backend ray" in shown.stdout and "healthy" in shown.stdout
            assert "partyflow-worker-0" in shown.stdout and "partyflow-worker-1" in shown.stdout

    try:
        asyncio.run(scenario())
    finally:
        live.stop()
        engine.close()
    import ray

    served = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "served"]
    assert served == []  # the server's workers went with it; the module's own are untouched
    assert rig.run(rig.backend.status())["workers"][0]["alive"] is True


def test_an_interrupt_reaches_the_worker_running_the_prompt(rig: RayRig) -> None:
    marker = rig.engine.home.temp / "interrupt-test"
    marker.mkdir()
    workflow = {"1": node("BlockFirstRun", folder=str(marker), text="x"), "2": node("DisplayText", text=["1", 0])}
    item = submit_and_claim(rig, workflow)
    stop_forwarding = rig.engine.forward_interrupts(rig.backend.interrupt)

    def on_event(event: Event) -> None:
        if isinstance(event, CustomMessage) and event.event == "raytest.blocking":
            assert rig.engine.interrupt(item.prompt_id) is True  # as POST /interrupt calls it

    unsubscribe = rig.engine.subscribe(on_event)
    try:
        result = rig.run(Dispatcher(rig.engine, rig.backend).run_item(item))
    finally:
        unsubscribe()
        stop_forwarding()
    assert result.status == "interrupted"
    assert rig.engine.queue.history(item.prompt_id)[item.prompt_id]["status"]["status_str"] == "error"


def run_on_worker(rig: RayRig, backend: Any, index: int, workflow: Any):
    """Run a prompt on the backend's `index`th worker (the dispatcher would pick the least busy one)."""
    item = submit_and_claim(rig, workflow)
    result = rig.run(backend._run_on(backend._workers[index], item, lambda e: None))
    rig.engine.queue.finish(item, outputs=result.outputs, status=result.history_status())
    return result


def counted_workflow(folder: Path, text: str) -> dict[str, Any]:
    folder.mkdir()
    return {"1": node("CountRuns", folder=str(folder), text=text), "2": node("DisplayText", text=["1", 0])}


def test_a_result_computed_on_one_worker_is_reused_by_another(rig: RayRig) -> None:
    folder = rig.engine.home.temp / "shared-cache"
    workflow = counted_workflow(folder, "computed once")
    first = run_on_worker(rig, rig.backend, 0, workflow)
    second = run_on_worker(rig, rig.backend, 1, workflow)
    assert first.meta["backend"]["worker"] != second.meta["backend"]["worker"]
    assert (folder / "runs").read_text().splitlines() == [str(first.meta["backend"]["pid"])]  # ran once, on worker 0
    assert "1" in first.executed and second.executed == [] and "2" in second.cached  # a hit spares its inputs
    assert second.outputs == first.outputs == {"2": {"text": ["COMPUTED ONCE"]}}
    assert second.meta["backend"]["shared_cache_hits"] >= 1
    stats = rig.run(rig.backend.status())["shared_cache"]
    assert stats["alive"] and stats["hits"] >= 1 and stats["entries"] >= 1 and stats["bytes"] <= stats["max_bytes"]


def test_without_the_shared_cache_each_worker_computes_for_itself(rig: RayRig) -> None:
    import dataclasses

    from partyflow.distributed.ray_backend import RayBackend

    settings = dataclasses.replace(rig.backend.settings, shared_cache=False, namespace="nocache")
    backend = RayBackend(rig.engine, settings)
    rig.run(backend.start())
    try:
        folder = rig.engine.home.temp / "no-shared-cache"
        workflow = counted_workflow(folder, "computed twice")
        first = run_on_worker(rig, backend, 0, workflow)
        second = run_on_worker(rig, backend, 1, workflow)
        assert len((folder / "runs").read_text().splitlines()) == 2
        assert "1" in second.executed and "shared_cache_hits" not in second.meta["backend"]
        assert second.outputs == first.outputs
        assert rig.run(backend.status())["shared_cache"] is None
    finally:
        rig.run(backend.close())


def chat_workflow(user: str, *, stream: bool) -> dict[str, Any]:
    return {"model": node("LocalModelLoader", folder="tiny", device="cpu", dtype="float32"),
            "chat": node("LLMChat", model=["model", 0], system_prompt="Answer briefly.", user_prompt=user,
                         temperature=0.0, max_tokens=8, stream=stream),
            "show": node("DisplayText", text=["chat", 0])}


def test_a_model_actor_loads_the_model_once_and_serves_both_workers(rig: RayRig) -> None:
    workflows = [chat_workflow("Hello there", stream=True), chat_workflow("How are you?", stream=False)]
    local = [rig.engine.run(w) for w in workflows]  # the local backend, greedy: the reference replies
    assert all(r.ok for r in local), [r.error for r in local]
    items = [submit_and_claim(rig, w) for w in workflows]
    streamed: list[Event] = []

    async def both() -> list[Any]:  # at the same time, one prompt per worker
        return await asyncio.gather(*(rig.backend._run_on(w, item, streamed.append)
                                      for w, item in zip(rig.backend._workers, items, strict=True)))

    remote = rig.run(both())
    for item, result in zip(items, remote, strict=True):
        rig.engine.queue.finish(item, outputs=result.outputs, status=result.history_status())
    assert [r.status for r in remote] == ["success", "success"], [r.error for r in remote]
    assert [r.outputs for r in remote] == [r.outputs for r in local]
    assert {r.meta["backend"]["worker"] for r in remote} == {"partyflow-worker-0", "partyflow-worker-1"}
    assert sum(isinstance(e, ExecutionSuccess) for e in streamed) == 2
    status = rig.run(rig.backend.status())
    actors = status["model_actors"]
    assert len(actors) == 1 and actors[0]["alive"]
    assert actors[0]["loads"] == 1 and actors[0]["calls"] >= 2  # one load served both workers
    assert actors[0]["models"][0]["name"] == "tiny" and actors[0]["models"][0]["bytes"] > 0
    assert actors[0]["pid"] not in {r.meta["backend"]["pid"] for r in remote}  # the workers hold no weights
    assert all(w["models"] == [] for w in status["workers"])
    assert rig.backend.loaded_model_actors() == [(actors[0]["id"], "tiny")]
    from partyflow.distributed.metrics import RayWorkerCollector

    series = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for family in RayWorkerCollector(rig.backend).collect() for s in family.samples}
    assert series[("partyflow_ray_model_actors_loaded", (("actor", actors[0]["id"]), ("model", "tiny")))] == 1


def test_a_local_provider_of_config_toml_runs_in_a_model_actor_too(rig: RayRig) -> None:
    config = rig.engine.home.config_file
    saved = config.read_text(encoding="utf-8")
    config.write_text(saved + '\n[providers.tinycfg]\ntype = "transformers"\npath = "tiny"\n', encoding="utf-8")
    try:
        workflow = {"model": node("APIModelLoader", provider="tinycfg", model=""),
                    "chat": node("LLMChat", model=["model", 0], system_prompt="", user_prompt="Configured?",
                                 temperature=0.0, max_tokens=6, stream=False),
                    "show": node("DisplayText", text=["chat", 0])}
        local = rig.engine.run(workflow)
        assert local.ok, local.error
        remote = rig.run(rig.backend.run(submit_and_claim(rig, workflow), lambda e: None))
        assert remote.status == "success", remote.error
        assert remote.outputs == local.outputs
        used = remote.meta["backend"]["model_actors"]
        assert len(used) == 1
        actors = {a["id"]: a for a in rig.run(rig.backend.status())["model_actors"]}
        assert actors[used[0][0]]["provider"] == "tinycfg" and actors[used[0][0]]["loads"] == 1
    finally:
        config.write_text(saved, encoding="utf-8")


def test_a_gguf_model_runs_in_one_model_actor_for_both_workers(rig: RayRig) -> None:
    def workflow(user: str) -> dict[str, Any]:
        return {"model": node("GGUFModelLoader", gguf_file="tiny.gguf", n_ctx=256, threads=1),
                "chat": node("LLMChat", model=["model", 0], system_prompt="", user_prompt=user, temperature=0.0,
                             max_tokens=6, stream=False),
                "show": node("DisplayText", text=["chat", 0])}

    workflows = [workflow("llama one"), workflow("llama two")]
    local = [rig.engine.run(w) for w in workflows]
    assert all(r.ok for r in local), [r.error for r in local]
    items = [submit_and_claim(rig, w) for w in workflows]

    async def both() -> list[Any]:
        return await asyncio.gather(*(rig.backend._run_on(w, item, lambda e: None)
                                      for w, item in zip(rig.backend._workers, items, strict=True)))

    remote = rig.run(both())
    for item, result in zip(items, remote, strict=True):
        rig.engine.queue.finish(item, outputs=result.outputs, status=result.history_status())
    assert [r.outputs for r in remote] == [r.outputs for r in local], [r.error for r in remote]
    keys = {tuple(pair) for r in remote for pair in r.meta["backend"]["model_actors"]}
    assert len(keys) == 1  # both workers called the same actor
    actor = {a["id"]: a for a in rig.run(rig.backend.status())["model_actors"]}[next(iter(keys))[0]]
    assert actor["loads"] == 1 and actor["calls"] >= 2 and actor["models"][0]["name"] == "tiny"
    assert actor["resources"].get("memory", 0) > 0  # sized by the GGUF file
