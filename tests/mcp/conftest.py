"""Fixtures of the MCP tests: the test MCP server (stdio and streamable HTTP), a home configured for it, the
scripted OpenAI-compatible loopback server and an engine on that home."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.openai_server import OpenAIServer
from tests.support.providers import engine_fixture, fresh_server_fixture, openai_table, running_server_fixture

from partyflow.tools.mcp import MCPServerConfig

ECHO_SERVER = Path(__file__).parent / "servers" / "echo_server.py"


def echo_config(*flags: str, name: str = "echo", **options: object) -> MCPServerConfig:
    """The test server over stdio, started with this interpreter."""
    return MCPServerConfig(name=name, command=sys.executable, args=(str(ECHO_SERVER), *flags), **options)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the engine and partyflow's providers are asyncio-based


@pytest.fixture(scope="session")
def http_echo() -> Iterator[str]:
    """The test server over streamable HTTP on 127.0.0.1; yields its /mcp URL. It prints its port once bound."""
    process = subprocess.Popen([sys.executable, str(ECHO_SERVER), "--http"], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("PORT "), f"the HTTP test server did not start: {line!r}"
        yield f"http://127.0.0.1:{int(line.split()[1])}/mcp"
    finally:
        process.kill()
        process.wait(timeout=10)


openai_server = running_server_fixture("openai_server", scope="session")
scripted = fresh_server_fixture("scripted", running="openai_server", check_failures=True)
engine = engine_fixture()


def write_config(home: Path, openai_url: str, extra: str = "") -> None:
    python = sys.executable.replace("\\", "/")
    (home / "config.toml").write_text(f"""{openai_table("default", openai_url)}
[mcp.servers.echo]
command = "{python}"
args = ["{ECHO_SERVER.as_posix()}"]
env = {{ ECHO_TOKEN = "${{PARTYFLOW_TEST_MCP_TOKEN}}" }}
timeout = 10

[mcp.servers.fetch]
command = "{python}"
args = ["{ECHO_SERVER.as_posix()}"]
{extra}
""", encoding="utf-8")


@pytest.fixture
def home(tmp_path: Path, scripted: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    write_config(home, scripted.url)
    monkeypatch.setenv("PARTYFLOW_TEST_MCP_TOKEN", "s3cret-value-42")
    return home
