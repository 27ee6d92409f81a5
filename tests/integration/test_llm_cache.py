"""The opt-in response cache through real engines: per provider and per Chat node, across runs and processes.

Each run uses a new engine, so the engine's own output cache cannot be what answers: only the response cache in
the home's llm_cache.sqlite can spare the HTTP request, which the loopback server counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.support.openai_server import OpenAIServer
from tests.support.providers import (
    chat,
    fresh_server_fixture,
    loader,
    node,
    openai_table,
    running_server_fixture,
    write_config,
)

from partyflow import Engine
from partyflow.llm.cache import CACHE_FILE

KEY_ENV = "PARTYFLOW_TEST_CACHE_KEY"
ROOT = Path(__file__).resolve().parents[2]


running_server = running_server_fixture()
server = fresh_server_fixture()


@pytest.fixture
def home(tmp_path: Path, server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(KEY_ENV, "sk-cache-test-0123456789")
    return write_config(tmp_path / "home",
                        openai_table("cached", server.url, key_env=KEY_ENV, timeout=None, cache=True),
                        openai_table("plain", server.url, key_env=KEY_ENV, timeout=None))


def workflow(provider: str, **chat_inputs: Any) -> dict[str, Any]:
    return {"model": loader(provider), "chat": chat("What is 2 + 2?", **chat_inputs),
            "show": node("DisplayText", text=["chat", 0])}


def run_fresh(home: Path, prompt: dict[str, Any]) -> str:
    """One run on a new engine (no output cache carried over); returns the reply."""
    with contextlib.closing(Engine(home=home, load_custom_nodes=False)) as engine:
        result = engine.run(prompt)
    assert result.ok, result.error
    return result.output("chat")


def chat_requests(server: OpenAIServer) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/chat/completions"))


def test_a_caching_provider_answers_a_repeated_deterministic_chat_without_a_request(
        home: Path, server: OpenAIServer) -> None:
    prompt = workflow("cached", temperature=0.0)
    first = run_fresh(home, prompt)
    second = run_fresh(home, prompt)
    assert first == second == "echo: What is 2 + 2?"
    assert chat_requests(server) == 1
    assert (home / CACHE_FILE).is_file()


def test_the_chat_node_opts_in_for_a_seeded_request(home: Path, server: OpenAIServer) -> None:
    prompt = workflow("plain", seed=42, cache=True, stream=False)
    assert run_fresh(home, prompt) == run_fresh(home, prompt)
    assert chat_requests(server) == 1
    run_fresh(home, workflow("plain", seed=43, cache=True, stream=False))  # another request, another key
    assert chat_requests(server) == 2


def test_non_deterministic_requests_are_never_cached(home: Path, server: OpenAIServer) -> None:
    prompt = workflow("cached", temperature=0.7, cache=True)
    run_fresh(home, prompt)
    run_fresh(home, prompt)
    assert chat_requests(server) == 2


def test_without_opting_in_nothing_is_cached(home: Path, server: OpenAIServer) -> None:
    prompt = workflow("plain", temperature=0.0)
    run_fresh(home, prompt)
    run_fresh(home, prompt)
    assert chat_requests(server) == 2
    assert not (home / CACHE_FILE).exists()


def test_the_cache_is_shared_with_another_process(home: Path, server: OpenAIServer) -> None:
    prompt = workflow("cached", temperature=0.0)
    first = run_fresh(home, prompt)
    script = ("import json, sys\nfrom partyflow import Engine\n"
              "engine = Engine(home=sys.argv[1], load_custom_nodes=False)\n"
              "result = engine.run(json.loads(sys.argv[2]))\nengine.close()\n"
              "assert result.ok, result.error\nprint(result.output('chat'))\n")
    done = subprocess.run([sys.executable, "-c", script, str(home), json.dumps(prompt)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**os.environ, "PARTYFLOW_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == first
    assert chat_requests(server) == 1
