"""A worker killed with SIGKILL mid-prompt loses no accepted prompt and no history entry."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import install_pack

from partyflow import Engine

WORKER = textwrap.dedent("""
    import asyncio, os, sys
    from partyflow import Engine

    engine = Engine(home=sys.argv[1], builtin_packs=())
    os.environ["CRASHPACK_RELEASE"] = "1"
    engine.submit({"1": {"class_type": "Hold", "inputs": {"label": "done-before"}}}, prompt_id="before")
    asyncio.run(engine.drain())
    os.environ["CRASHPACK_RELEASE"] = "0"
    for label in ("first", "second", "third"):
        engine.submit({"1": {"class_type": "Hold", "inputs": {"label": label}}}, prompt_id=label)
    print("ACCEPTED", flush=True)
    asyncio.run(engine.drain())
""")


def test_sigkill_mid_prompt_loses_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    install_pack(home, "crashpack")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(home)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert worker.stdout is not None
        lines = []
        for line in worker.stdout:
            lines.append(line.strip())
            if line.startswith("RUNNING"):
                break
        assert lines == ["ACCEPTED", "RUNNING first"]
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(timeout=30)
    assert worker.returncode == -signal.SIGKILL

    os.environ["CRASHPACK_RELEASE"] = "1"
    try:
        engine = Engine(home=home, builtin_packs=())
        assert [item.prompt_id for item in engine.queue.pending()] == ["first", "second", "third"]
        results = asyncio.run(engine.drain())
    finally:
        os.environ.pop("CRASHPACK_RELEASE")
    assert [r.prompt_id for r in results] == ["first", "second", "third"]
    assert all(r.status == "success" for r in results)
    history = engine.queue.history()
    assert list(history) == ["before", "first", "second", "third"]
    assert history["first"]["outputs"] == {"1": {"text": ["first"]}}
    assert history["first"]["status"]["status_str"] == "success"
    assert history["first"]["status"]["messages"][0][0] == "execution_start"
    engine.close()
