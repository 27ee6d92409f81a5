"""`partyflow serve` as a real subprocess: SIGTERM lets the running prompt finish, or leaves it queued when it
outlasts the grace period; logs are JSON lines without the token."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tests.server.live import make_home

from partyflow.engine.queue import PromptQueue

TOKEN = "shutdown-test-token"


class ServeProcess:
    def __init__(self, home: Path, grace: float) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PARTYFLOW_API_TOKEN": TOKEN}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "partyflow", "serve", "--home", str(home), "--port", "0",
             "--shutdown-grace", str(grace), "--log-format", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.log: list[str] = []
        line = self.stdout_line("partyflow listening on ")
        self.url = line.removeprefix("partyflow listening on ").strip()
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {TOKEN}"

    def stdout_line(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line
        raise AssertionError(f"server exited before printing {prefix!r}: {self.proc.stderr.read()}")  # type: ignore

    def log_line(self, needle: str) -> str:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no log line with {needle!r}: {self.log}")

    def queue(self, prompt_id: str, release: Path) -> None:
        prompt = {"1": {"class_type": "Gate", "inputs": {"label": prompt_id, "release": str(release)}}}
        resp = self.http.post(f"{self.url}/prompt", json={"prompt": prompt, "prompt_id": prompt_id}, timeout=10)
        assert resp.status_code == 200, resp.text

    def finish(self) -> int:
        _, rest = self.proc.communicate(timeout=60)
        self.log.extend(rest.splitlines(keepends=True))
        return self.proc.returncode


@pytest.fixture
def serve_home(tmp_path: Path) -> Iterator[Path]:
    yield make_home(tmp_path)


def _state(home: Path) -> tuple[list[str], dict]:
    with PromptQueue(home / "state.sqlite") as queue:  # opening recovers prompts left running
        return [item.prompt_id for item in queue.pending()], queue.history()


def test_sigterm_lets_the_running_prompt_finish(serve_home: Path, tmp_path: Path) -> None:
    server = ServeProcess(serve_home, grace=30)
    try:
        server.queue("first", tmp_path / "release-first")
        server.queue("second", tmp_path / "never")
        server.stdout_line("GATE first")
        server.proc.send_signal(signal.SIGTERM)
        server.log_line("stopping")
        (tmp_path / "release-first").touch()
        assert server.finish() == 0
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    pending, history = _state(serve_home)
    assert history["first"]["status"]["status_str"] == "success"
    assert history["first"]["outputs"] == {"1": {"text": ["first"]}}
    assert pending == ["second"]
    records = [json.loads(line) for line in server.log if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert not any(TOKEN in line for line in server.log)


def test_sigterm_requeues_a_prompt_that_outlasts_the_grace_period(serve_home: Path, tmp_path: Path) -> None:
    server = ServeProcess(serve_home, grace=0.2)
    try:
        server.queue("slow", tmp_path / "never")
        server.stdout_line("GATE slow")
        server.proc.send_signal(signal.SIGTERM)
        assert server.finish() == 0
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    pending, history = _state(serve_home)
    assert pending == ["slow"] and history == {}
    assert any("stays queued" in line for line in server.log)


def test_apply_changes_restarts_the_serve_process(serve_home: Path) -> None:
    server = ServeProcess(serve_home, grace=1.0)
    try:
        resp = server.http.post(f"{server.url}/api/v2/manager/reboot", timeout=10)
        assert resp.status_code == 200, resp.text
        again = server.stdout_line("partyflow listening on ")  # the same process, started afresh (exec)
        url = again.removeprefix("partyflow listening on ").strip()
        assert server.http.get(f"{url}/api/system_stats", timeout=10).status_code == 200
        assert server.proc.poll() is None
    finally:
        server.proc.send_signal(signal.SIGTERM)
        assert server.finish() == 0
