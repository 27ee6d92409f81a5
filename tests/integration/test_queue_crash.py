"""A process killed with SIGKILL while running a prompt loses no accepted prompt and no history entry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import partyflow
from partyflow.engine.queue import PromptQueue

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

SRC = str(Path(partyflow.__file__).resolve().parent.parent)

# The doomed worker: finishes one prompt, accepts more (one at the front), claims the next and, while it is
# "running", says so and blocks until it is killed. Each step is reported on stdout for the test to follow.
WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from partyflow.engine.queue import PromptQueue

    queue = PromptQueue(Path(sys.argv[1]))
    for name in ("first", "second", "third"):
        queue.put({"1": {"class_type": "Note", "inputs": {"text": name}}}, prompt_id=name)
    done = queue.claim()
    queue.finish(done, outputs={"1": {"text": [done.prompt_id]}}, status={"status_str": "success",
                 "completed": True, "messages": []})
    print("finished", done.prompt_id, flush=True)
    queue.put({"1": {"class_type": "Note", "inputs": {"text": "urgent"}}}, prompt_id="urgent", front=True)
    queue.put({"1": {"class_type": "Note", "inputs": {"text": "fourth"}}}, prompt_id="fourth")
    running = queue.claim()
    print("running", running.prompt_id, flush=True)
    sys.stdin.read()  # stays "running" until the test kills us
    """
)


def test_sigkill_while_running_loses_no_prompt_and_keeps_history(tmp_path):
    db = tmp_path / "state.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert _next_line(worker) == "finished first"
        assert _next_line(worker) == "running urgent"
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stdin.close()
        worker.stdout.close()
        worker.stderr.close()

    with PromptQueue(db) as queue:
        assert queue.running() == []
        assert [item.prompt_id for item in queue.pending()] == ["urgent", "second", "third", "fourth"]
        assert queue.pending()[0].prompt == {"1": {"class_type": "Note", "inputs": {"text": "urgent"}}}
        history = queue.history()
        assert list(history) == ["first"]
        assert history["first"]["outputs"] == {"1": {"text": ["first"]}}
        assert history["first"]["status"]["status_str"] == "success"
        # The recovered prompt runs first, and the queue carries on as usual.
        assert queue.claim().prompt_id == "urgent"


def _next_line(worker: subprocess.Popen) -> str:
    line = worker.stdout.readline()
    if not line:  # the worker died early: show why
        worker.wait(timeout=30)
        pytest.fail(f"worker exited with {worker.returncode} before reporting:\n{worker.stderr.read()}")
    return line.strip()
