"""The head of a joined Ray cluster going away: a real head (`ray start --head` on 127.0.0.1, started and killed by
the test), a real server with `ray_driver = "process"`. The server survives, says the cluster is unreachable
(status route, /metrics, its log), keeps the prompt that was running and one submitted meanwhile in the queue, and
runs each once when the head is back."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.distributed.test_ray_backend import parse_metrics
from tests.server.live import finished, hello_prompt, receive_until, start_server

from partyflow import Engine
from partyflow.server import ServerConfig

RAY = str(Path(sys.executable).with_name("ray"))
PACKS = Path(__file__).parent / "packs"
# a head on loopback only, and no token: the driver process gets the same environment (set by the test)
HEAD_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Head:
    """`ray start --head --block` in its own process group, so killing it takes its GCS and raylet along."""

    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [RAY, "start", "--head", f"--port={self.port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                 "--include-dashboard=false", "--include-log-monitor=false", "--disable-usage-stats", "--block"],
                env={**os.environ, **HEAD_ENV}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture
def head(tmp_path: Path) -> Iterator[Head]:
    head = Head(free_port(), tmp_path / "head.log")
    try:
        yield head
    finally:
        head.kill()


async def wait_for_status(http: Any, healthy: bool, timeout: float = 90) -> dict[str, Any]:
    """The backend status once its `healthy` is as asked (the server's own report, asked until it says so)."""
    async with asyncio.timeout(timeout):
        while True:
            status = await (await http.get("/partyflow/backend")).json()
            if status.get("healthy") is healthy:
                return status
            await asyncio.sleep(0.2)  # polling interval of the condition, not a synchronising sleep


def test_the_head_going_away_is_reported_and_a_prompt_waits_for_it(
        head: Head, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    for name, value in HEAD_ENV.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.WARNING, logger="partyflow.distributed")
    home = tmp_path / "home"
    (home / "custom_nodes").mkdir(parents=True)
    shutil.copytree(PACKS / "raytest", home / "custom_nodes" / "raytest", ignore=shutil.ignore_patterns("__pycache__"))
    marker = tmp_path / "marker"
    marker.mkdir()
    (home / "config.toml").write_text(
        f'[engine]\nbackend = "ray"\nray_address = "127.0.0.1:{head.port}"\nray_workers = 1\n'
        'ray_head_timeout_s = 3\nray_namespace = "restart"\n', encoding="utf-8")
    head.start()
    engine = Engine(home, builtin_packs=("core",))
    blocking = {"1": {"class_type": "BlockFirstRun", "inputs": {"folder": str(marker), "text": "rerun"}},
                "2": {"class_type": "DisplayText", "inputs": {"text": ["1", 0]}}}
    live = start_server(engine, ServerConfig(port=0, shutdown_grace_s=5.0))

    async def scenario() -> None:
        async with live.session() as http, http.ws_connect(live.ws_url("c1")) as ws:
            first = await (await http.post("/prompt", json={"prompt": hello_prompt("before"),
                                                            "client_id": "c1"})).json()
            await receive_until(ws, finished(first["prompt_id"]), timeout=90)
            status = await wait_for_status(http, True)
            assert status["driver"]["mode"] == "process" and status["driver"]["restarts"] == 0

            driver_pid = status["driver"]["pid"]
            running = await (await http.post("/prompt", json={"prompt": blocking, "client_id": "c1"})).json()
            await receive_until(ws, lambda m: m["type"] == "raytest.blocking", timeout=60)  # it runs on a worker
            await asyncio.to_thread(head.kill)
            down = await wait_for_status(http, False)
            assert "unreachable" in down["last_error"] or "exited" in down["last_error"]
            metrics = parse_metrics(await (await http.get("/metrics")).text())
            assert metrics[("partyflow_ray_up", ())] == 0.0

            second = await (await http.post("/prompt", json={"prompt": hello_prompt("after"),
                                                             "client_id": "c1"})).json()
            waiting = await (await http.get("/partyflow/backend")).json()
            assert waiting["healthy"] is False and waiting["queue_remaining"] == 2  # the running one and this one
            for prompt in (running, second):
                assert await (await http.get(f"/history/{prompt['prompt_id']}")).json() == {}

            await asyncio.to_thread(head.start)
            ids = {running["prompt_id"], second["prompt_id"]}
            done: set[str] = set()

            def both_finished(message: dict[str, Any]) -> bool:
                done.update(p for p in ids if finished(p)(message))
                return done == ids

            messages = await receive_until(ws, both_finished, timeout=120)
            mine = [m["type"] for m in messages if m["data"].get("prompt_id") == second["prompt_id"]]
            assert "execution_success" in mine
            history = await (await http.get("/history")).json()
            assert history[second["prompt_id"]]["outputs"] == {"2": {"text": ["after"]}}
            # the prompt that was running when the head went away ran again from the start, recorded once
            assert history[running["prompt_id"]]["status"]["status_str"] == "success"
            assert history[running["prompt_id"]]["outputs"]["2"]["text"][0].startswith("rerun from ")
            assert list(history).count(second["prompt_id"]) == list(history).count(running["prompt_id"]) == 1
            back = await wait_for_status(http, True)
            assert back["driver"]["restarts"] == 1 and back["driver"]["pid"] != driver_pid
            assert await (await http.get("/prompt")).json() == {"exec_info": {"queue_remaining": 0}}

    try:
        asyncio.run(scenario())
    finally:
        live.stop()
        engine.close()
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "unreachable" in logged and "is back; resuming" in logged
