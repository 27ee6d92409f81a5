"""`partyflow models` as users run it: subprocesses against a loopback OpenAI-compatible server in this process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.providers import fresh_server_fixture, openai_table, running_server_fixture, write_config

KEY = "sk-cli-loopback-0123456789abcdef"
KEY_ENV = "PARTYFLOW_TEST_CLI_KEY"


running_server = running_server_fixture()
server = fresh_server_fixture()


def closed_port() -> int:
    """A port nobody listens on: bound, then released, so connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def home(tmp_path: Path, server: OpenAIServer) -> Path:
    return write_config(tmp_path / "home", openai_table("loop", server.url, key_env=KEY_ENV, timeout=None),
                        openai_table("refused", f"http://127.0.0.1:{closed_port()}/v1", timeout=None),
                        openai_table("keyless", server.url, key_env="PARTYFLOW_TEST_UNSET_KEY", max_retries=None,
                                     timeout=None),
                        '[providers.local]\ntype = "transformers"\npath = "no-such-model"\n')


def partyflow(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PARTYFLOW_HOME" and not k.startswith("PARTYFLOW_PROVIDERS")}
    env |= {KEY_ENV: KEY, "COLUMNS": "200"}
    env.pop("PARTYFLOW_TEST_UNSET_KEY", None)
    if home is not None:
        env["PARTYFLOW_HOME"] = str(home)  # the documented way, alongside --home in other tests
    done = subprocess.run([sys.executable, "-m", "partyflow", *args], capture_output=True, text=True, env=env,
                          timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    assert KEY not in done.stdout + done.stderr
    return done


def test_list_shows_every_provider_and_why_it_is_unusable(home: Path) -> None:
    done = partyflow("models", "list", "--json", home=home)
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert set(rows) == {"loop", "refused", "keyless", "local"}
    assert rows["loop"]["usable"] and rows["loop"]["reason"] == f"${KEY_ENV} is set"
    assert rows["loop"]["type"] == "openai_compat" and rows["loop"]["model"] == "tiny-chat"
    assert rows["refused"]["usable"] and rows["refused"]["reason"] == "no key needed"
    assert not rows["keyless"]["usable"] and rows["keyless"]["reason"] == "$PARTYFLOW_TEST_UNSET_KEY is not set"
    assert not rows["local"]["usable"] and "does not exist" in rows["local"]["reason"]


def test_list_without_providers_says_which_table_to_add(tmp_path: Path) -> None:
    done = partyflow("models", "list", home=tmp_path)
    assert done.returncode == 0
    assert "add a [providers.NAME] table to" in " ".join(done.stderr.split())


def test_list_as_a_table_with_home_flag(home: Path) -> None:
    done = partyflow("--home", str(home), "models", "list")
    assert done.returncode == 0, done.stderr
    for text in ("loop", "refused", "keyless", "local", "is not set", "does not exist"):
        assert text in done.stdout


def test_round_trip_prints_model_reply_and_time(home: Path, server: OpenAIServer) -> None:
    done = partyflow("models", "test", "loop", "--prompt", "ping [1]", home=home)
    assert done.returncode == 0, done.stderr
    assert "tiny-chat" in done.stdout and "echo: ping [1]" in done.stdout and " s, 7 prompt" in done.stdout
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"

    done = partyflow("models", "test", "loop", "--model", "tiny-embed", "--json", home=home)
    result = json.loads(done.stdout)
    assert result["model"] == "tiny-embed" and result["reply"].startswith("echo: ") and result["seconds"] >= 0


@pytest.mark.parametrize("reply, diagnosis, detail", [
    (Reply.error(401, f"Incorrect API key provided: {KEY}"), "authentication failed", "HTTP 401"),
    (Reply.error(404, "The model does not exist"), "model or endpoint not found", "The model does not exist"),
    (Reply.error(429, "Too many requests", headers={"Retry-After": "0"}), "rate limited", "HTTP 429"),
    (Reply.malformed(), "malformed reply", "malformed"),
    (Reply.slow(30), "timed out", "within 0.5s"),
], ids=["401", "404", "429", "malformed", "timeout"])
def test_failures_are_diagnosed(home: Path, server: OpenAIServer, reply: Reply, diagnosis: str,
                                detail: str) -> None:
    server.script(reply)
    done = partyflow("models", "test", "loop", "--timeout", "0.5", home=home)
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert message.startswith(f"{diagnosis}: provider 'loop', model 'tiny-chat'")
    assert detail in message


def test_connection_refused(home: Path) -> None:
    done = partyflow("models", "test", "refused", home=home)
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert message.startswith("cannot reach the server: provider 'refused'")
    assert "Connection refused" in message and "Check the provider's base_url" in message


@pytest.mark.parametrize("name, expected", [
    ("keyless", "the API key variable $PARTYFLOW_TEST_UNSET_KEY is not set"),
    ("nope", "unknown provider 'nope' (configured: keyless, local, loop, refused). Add a [providers.nope] table"),
])
def test_config_problems_exit_2(home: Path, name: str, expected: str) -> None:
    done = partyflow("models", "test", name, home=home)
    assert done.returncode == 2
    assert expected in " ".join(done.stderr.split())


def test_invalid_config_file_exit_2(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[providers.bad]\ntype = "openai_compat"\napi_key = "sk-secret-value"\n')
    done = partyflow("models", "list", home=tmp_path)
    assert done.returncode == 2
    assert "keys do not belong in config files" in " ".join(done.stderr.split())
    assert "sk-secret-value" not in done.stderr
