"""Who may run code-running tools: the policy table, config.toml's `[server] allow_code_tools`, and the server
refusing an Agent + Python Code Tool workflow over HTTP (issue 10, item 1), end to end on real servers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.agents.scripted import calls, chat_requests, text
from tests.server.live import LiveServer, finished, receive_until, run, start_server
from tests.support.openai_server import OpenAIServer
from tests.support.providers import fresh_server_fixture, loader, node, openai_table, running_server_fixture
from typer.testing import CliRunner

from partyflow import Engine
from partyflow.cli.main import app
from partyflow.config import ConfigError, Home
from partyflow.nodes.host import PromptSource
from partyflow.security.levels import SecurityLevel
from partyflow.security.policy import Caller, SecurityPolicy, code_tools_decision, server_allows_code_tools
from partyflow.server import ServerConfig

running_server = running_server_fixture()
server = fresh_server_fixture(check_failures=True)

LOCAL, LOOPBACK, REMOTE = Caller(), Caller(trusted=False, loopback=True), Caller(trusted=False, loopback=False)
ATTACK = "custom_nodes/evil_pack/__init__.py"


def test_the_policy_table() -> None:
    def ok(level: SecurityLevel, caller: Caller, allows: bool = False) -> bool:
        return SecurityPolicy(level).code_tools(caller, server_allows=allows).allowed

    levels = list(SecurityLevel)  # strong, normal, normal-, weak
    assert [ok(level, LOCAL) for level in levels] == [False, True, True, True]
    assert [ok(level, LOOPBACK) for level in levels] == [False, False, True, True]
    assert [ok(level, REMOTE) for level in levels] == [False, False, False, True]
    assert [ok(level, REMOTE, allows=True) for level in levels] == [False, True, True, True]
    refused = SecurityPolicy(SecurityLevel.NORMAL).code_tools(LOOPBACK)
    assert "over HTTP" in refused.reason and "[server] allow_code_tools = true" in (refused.hint or "")
    assert "'strong'" in SecurityPolicy(SecurityLevel.STRONG).code_tools(LOCAL).reason


def test_the_setting_must_be_a_boolean(tmp_path: Path) -> None:
    home = Home(tmp_path)
    assert server_allows_code_tools(home) is False
    home.config_file.write_text("[server]\nallow_code_tools = \"yes\"\n")
    with pytest.raises(ConfigError, match="allow_code_tools must be true or false"):
        code_tools_decision(home, over_http=True)
    home.config_file.write_text("[server]\nallow_code_tools = true\n")
    assert code_tools_decision(home, over_http=True).allowed


def _home(root: Path, openai: OpenAIServer, *extra: str) -> Path:
    home = root / "home"
    home.mkdir()
    (home / "config.toml").write_text("\n".join([openai_table("default", openai.url), *extra]), encoding="utf-8")
    return home


def _prompt(task: str = "Write the file.") -> dict[str, Any]:
    return {"model": loader("default"), "code": node("PythonCodeTool", work_folder="code", timeout=8.0),
            "agent": node("Agent", model=["model", 0], system_prompt="Do what the task says.", task=task,
                          tools=["code", 0]),
            "show": node("DisplayText", text=["agent", 0])}


@pytest.fixture
def engine_at(tmp_path: Path, server: OpenAIServer) -> Iterator[Any]:
    engines: list[Engine] = []
    lives: list[LiveServer] = []

    def make(*extra: str, serve: bool = True) -> tuple[Engine, LiveServer | None]:
        engine = Engine(home=_home(tmp_path, server, *extra), load_custom_nodes=False)
        engines.append(engine)
        live = start_server(engine, ServerConfig(port=0, shutdown_grace_s=1.0)) if serve else None
        if live:
            lives.append(live)
        return engine, live

    yield make
    for live in lives:
        live.stop()
    for engine in engines:
        engine.close()


async def _post(live: LiveServer, prompt: dict[str, Any], client_id: str | None = None) -> tuple[int, Any]:
    async with live.session() as session:
        async with session.post("/prompt", json={"prompt": prompt, "client_id": client_id}) as response:
            return response.status, await response.json()


def test_http_prompt_with_the_code_tool_is_refused_at_normal_by_default(engine_at: Any,
                                                                       server: OpenAIServer) -> None:
    engine, live = engine_at()
    status, body = run(_post(live, _prompt()))
    assert status == 403 and body["error"]["type"] == "code_tools_refused"
    assert "refused for workflows submitted over HTTP at security level 'normal'" in body["error"]["message"]
    assert "[server] allow_code_tools = true" in body["error"]["details"]
    assert body["error"]["extra_info"]["nodes"] == ["code"]
    assert engine.queue.remaining() == 0 and not chat_requests(server)  # nothing queued, the model never asked
    assert not (engine.home.root / ATTACK).exists()


def test_the_issue_attack_over_http_with_code_tools_enabled_stays_in_the_sandbox(engine_at: Any,
                                                                                 server: OpenAIServer) -> None:
    engine, live = engine_at("[server]\nallow_code_tools = true\n")
    home = engine.home.root
    attack = (f"import os\nos.makedirs({str(home / 'custom_nodes' / 'evil_pack')!r}, exist_ok=True)\n"
              f"open({str(home / ATTACK)!r}, 'w').write('print(1)')")
    server.script(calls(("run_python", {"code": attack}), ("run_python", {"code": "open('made.txt','w').write('ok')"})),
                  text("Done what I could."))

    async def go() -> list[dict[str, Any]]:
        async with live.session() as session, session.ws_connect(live.ws_url("c-1")) as ws:
            async with session.post("/prompt", json={"prompt": _prompt(), "client_id": "c-1"}) as response:
                assert response.status == 200, await response.text()
                prompt_id = (await response.json())["prompt_id"]
            return await receive_until(ws, finished(prompt_id), timeout=60)

    messages = run(go())
    assert not any(m["type"] == "execution_error" for m in messages), messages
    assert not (home / ATTACK).exists() and not (home / "custom_nodes" / "evil_pack").exists()
    assert (home / "output" / "code" / "made.txt").read_text() == "ok"
    tool_results = [json.loads(m["content"]) for m in chat_requests(server)[-1].body["messages"] if m["role"] == "tool"]
    assert tool_results[0]["exit_code"] == 1 and tool_results[1]["exit_code"] == 0


def test_the_node_checks_again_when_it_runs(engine_at: Any, server: OpenAIServer) -> None:
    """Other routes (the OpenAI API, published workflows) run prompts without POST /prompt: the node refuses too."""
    engine, _ = engine_at(serve=False)
    engine.host.source = PromptSource(over_http=True, loopback=True)
    result = engine.run(_prompt())
    assert not result.ok and "[server] allow_code_tools = true" in result.error.message
    assert not chat_requests(server)


def test_local_runs_are_allowed_at_normal_and_refused_at_strong(engine_at: Any, server: OpenAIServer) -> None:
    engine, _ = engine_at(serve=False)
    server.script(calls(("run_python", {"code": "print(6 * 7)"})), text("42"))
    result = engine.run(_prompt())
    assert result.ok, result.error
    assert json.loads(chat_requests(server)[-1].body["messages"][-1]["content"])["stdout"] == "42\n"
    config = engine.home.config_file
    config.write_text('security_level = "strong"\n' + config.read_text())
    refused = engine.run(_prompt())
    assert not refused.ok and "off at security level 'strong'" in refused.error.message


def test_the_cli_security_level_reaches_code_tools(tmp_path: Path, server: OpenAIServer) -> None:
    home = _home(tmp_path, server)
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(_prompt()))
    result = CliRunner().invoke(app, ["--home", str(home), "--security-level", "strong", "run", str(workflow),
                                      "--json"])
    assert result.exit_code == 1 and "off at security level 'strong'" in json.loads(result.stdout)["error"]["message"]
    assert not chat_requests(server)
