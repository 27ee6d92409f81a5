"""`partyflow serve` killed with SIGKILL while 32 clients are posting prompts: every prompt the server answered
200 for is still there afterwards (queued or in history), none is in both, and running what is left puts each
accepted prompt in history exactly once, with its own result."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from partyflow.engine.engine import Engine
from partyflow.engine.queue import PromptQueue

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

CLIENTS = 32
KILL_AFTER = 300  # accepted prompts before the kill; clients keep posting until the server is gone


def prompt(value: str) -> dict:
    return {"1": {"class_type": "TextValue", "inputs": {"value": value}},
            "2": {"class_type": "DisplayText", "inputs": {"text": ["1", 0]}}}


def start_server(home: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("PARTYFLOW_API_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "partyflow", "serve", "--home", str(home), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("partyflow listening on "):
            return proc, line.removeprefix("partyflow listening on ").strip()
    raise AssertionError(f"server exited with {proc.wait()} before listening")


async def post_until_killed(url: str, proc: subprocess.Popen[str]) -> tuple[set[str], set[str], int]:
    """32 clients post (each waiting for its answer, then posting again) until the server dies under them."""
    attempted: set[str] = set()
    accepted: set[str] = set()
    enough = asyncio.Event()

    async def client(session: aiohttp.ClientSession, number: int) -> None:
        for n in range(100_000):
            prompt_id = f"c{number}-{n}"
            attempted.add(prompt_id)
            try:
                async with session.post(f"{url}/prompt", json={"prompt": prompt(prompt_id),
                                                               "prompt_id": prompt_id}) as answer:
                    if answer.status != 200:
                        raise AssertionError(f"POST /prompt: {answer.status} {await answer.text()}")
                    assert (await answer.json())["prompt_id"] == prompt_id
            except (aiohttp.ClientError, ConnectionError):
                return  # the server is gone: this prompt's fate is unknown to the client, so it was not accepted
            accepted.add(prompt_id)
            if len(accepted) >= KILL_AFTER:
                enough.set()
        raise AssertionError("the server was never killed")

    async def killer() -> int:
        await asyncio.wait_for(enough.wait(), 120)
        os.kill(proc.pid, signal.SIGKILL)
        return len(accepted)

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=CLIENTS)) as session:
        clients = [asyncio.create_task(client(session, n)) for n in range(CLIENTS)]
        accepted_at_kill = await killer()
        await asyncio.gather(*clients)
    return attempted, accepted, accepted_at_kill


def test_sigkill_under_32_clients_loses_no_accepted_prompt_and_duplicates_none(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, url = start_server(home)
    try:
        attempted, accepted, accepted_at_kill = asyncio.run(post_until_killed(url, proc))
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert accepted_at_kill >= KILL_AFTER

    with PromptQueue(home / "state.sqlite") as queue:  # opening recovers what was running
        pending = [item.prompt_id for item in queue.pending()]
        history = queue.history()
        assert queue.running() == []
    assert len(pending) == len(set(pending))
    assert not set(pending) & set(history), "a prompt is both queued and finished"
    assert accepted <= set(pending) | set(history), f"lost: {sorted(accepted - set(pending) - set(history))[:5]}"
    assert set(pending) | set(history) <= attempted  # nothing invented
    assert history, "the worker finished nothing before the kill"

    with Engine(home=home, load_custom_nodes=False) as engine:  # run what was left, as the next start would
        asyncio.run(engine.drain())
        assert engine.queue.pending() == []
        final = engine.queue.history()
    assert set(final) == set(pending) | set(history)
    assert accepted <= set(final)
    for prompt_id, entry in final.items():
        assert entry["status"]["status_str"] == "success", (prompt_id, entry["status"])
        assert entry["outputs"] == {"2": {"text": [prompt_id]}}, prompt_id  # each prompt its own result
