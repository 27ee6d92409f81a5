"""The Python code tool in real sandboxed processes (bubblewrap): output, limits and refusals.

The escape suite lives in tests/security/test_sandbox_escapes.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tests.agents.scripted import calls, text
from tests.support.openai_server import OpenAIServer

from partyflow.agents import Agent
from partyflow.llm import ChatModel
from partyflow.tools.builtin import SandboxLimits, python_tool, run_python

FAST = SandboxLimits(wall_seconds=5, cpu_seconds=1, memory_bytes=256 * 1024 * 1024)


def run(code: str, **options: object) -> dict[str, object]:
    return asyncio.run(run_python(code, limits=options.pop("limits", FAST), **options))  # type: ignore[arg-type]


def test_runs_code_and_captures_output() -> None:
    result = run("import math\nprint(math.factorial(5))\nimport sys\nprint('warn', file=sys.stderr)")
    assert result["exit_code"] == 0 and result["stdout"] == "120\n" and "warn" in result["stderr"]
    failed = run("raise ValueError('boom')")
    assert failed["exit_code"] == 1 and "ValueError: boom" in failed["stderr"]


def test_network_is_unreachable(server: OpenAIServer) -> None:
    host, port = server.url.split("//")[1].split("/")[0].rsplit(":", 1)
    result = run(f"import socket\nsocket.create_connection(({host!r}, {port}), timeout=2)")
    assert result["exit_code"] == 1 and ("ConnectionRefusedError" in result["stderr"]
                                          or "Network is unreachable" in result["stderr"])


def test_writes_outside_the_work_folder_are_refused(tmp_path: Path) -> None:
    work = tmp_path / "work"
    target = tmp_path / "outside.txt"
    result = run(f"open('inside.txt', 'w').write('ok')\nopen({str(target)!r}, 'w').write('bad')", workdir=work)
    assert (work / "inside.txt").read_text() == "ok"
    assert not target.exists() and result["exit_code"] == 1
    made = run("import os\nos.mkdir('/tmp-escape-x')", workdir=work)
    assert "Read-only file system" in made["stderr"] and not Path("/tmp-escape-x").exists()


def test_processes_and_native_code_are_refused(tmp_path: Path) -> None:
    assert "PermissionError" in run("import subprocess\nsubprocess.run(['true'])")["stderr"]
    system = run("import os\nprint(os.system('echo x > made.txt'))", workdir=tmp_path)  # the shell never starts
    assert system["stdout"] != "0\n" and not (tmp_path / "made.txt").exists()
    assert run("import ctypes\nprint(ctypes.CDLL(None).fork())")["stdout"] == "-1\n"


def test_memory_limit() -> None:
    result = run("x = bytearray(1024 * 1024 * 1024)")
    assert result["exit_code"] == 1 and "MemoryError" in result["stderr"]


def test_time_limit_stops_a_busy_loop() -> None:
    result = run("while True:\n    pass", limits=SandboxLimits(wall_seconds=3, cpu_seconds=1))
    assert result["timed_out"] is True and result["exit_code"] != 0


def test_secrets_in_the_environment_do_not_reach_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    result = run("import os\nprint(sorted(os.environ))")
    assert "OPENAI_API_KEY" not in result["stdout"]


def test_the_tool_wraps_it(tmp_path: Path) -> None:
    tool = python_tool(workdir=tmp_path, limits=FAST)
    assert tool.name == "run_python" and "code" in tool.parameters["required"]
    result = asyncio.run(tool.invoke({"code": "print(6 * 7)"}))
    assert result["stdout"] == "42\n"


def test_an_agent_sees_the_refusals_and_carries_on(tmp_path: Path, server: OpenAIServer, model: ChatModel) -> None:
    work, outside = tmp_path / "work", tmp_path / "outside.txt"
    network = "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)"
    escape = f"open({str(outside)!r}, 'w').write('bad')"
    server.script(calls(("run_python", {"code": network}), ("run_python", {"code": escape})),
                  text("Neither network nor that file is allowed."))
    agent = Agent(model, tools=[python_tool(workdir=work, limits=FAST)])
    result = asyncio.run(agent.run("try"))
    assert result.ok and result.answer == "Neither network nor that file is allowed."
    reached, wrote = (json.loads(run.output) for run in result.steps[0].tool_runs)
    assert reached["exit_code"] == 1 and "Error" in reached["stderr"]
    assert wrote["exit_code"] == 1 and "Error" in wrote["stderr"] and not outside.exists()
