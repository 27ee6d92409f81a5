"""The editor as a user drives it (issue 11), in Debian's headless Chromium: the job queue panel, a 10,000-pass loop,
every shipped example loaded and run from the editor, and an unknown provider's message in the error panel.

One server and one booted page serve the whole module (booting the 120 MB editor is the slow part). Agent examples
talk to the scripted OpenAI-compatible loopback server and the test MCP server, as their engine tests do. Waits are
on page conditions only.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import playwright.sync_api as playwright_api
import pytest
from tests.agents.scripted import calls, text
from tests.browser.test_frontend import ARTIFACTS, BOOT_TIMEOUT_MS, CHROMIUM, CHROMIUM_ARGS
from tests.media.test_examples import STORY, image_reply, install_inputs, streamed
from tests.server.live import make_home
from tests.server.test_long_loops import countdown
from tests.server_openai.live_server import LiveServer
from tests.support.openai_server import OpenAIServer
from tests.support.providers import openai_table

from partyflow.config import Home
from partyflow.engine.engine import Engine
from partyflow.manager.audit import AuditLog
from partyflow.server.app import create_app
from partyflow.server.config import ServerConfig
from partyflow.server.frontend import frontend_extension

EXAMPLES = Path(__file__).parents[2] / "examples"
ECHO_SERVER = Path(__file__).parents[1] / "mcp" / "servers" / "echo_server.py"
RUN_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def openai() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, openai: OpenAIServer) -> Path:
    home = make_home(tmp_path_factory.mktemp("editor"))  # with the test pack's Gate node
    python = sys.executable.replace("\\", "/")
    (home / "config.toml").write_text(f"""{openai_table("default", openai.url)}
[mcp.servers.fetch]
command = "{python}"
args = ["{ECHO_SERVER.as_posix()}"]
timeout = 20
""", encoding="utf-8")
    install_inputs(home / "input")  # the media examples' screenshot and scanned page
    return home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[LiveServer]:
    engine = Engine(home=home)
    try:
        with LiveServer(lambda: create_app(engine, ServerConfig(port=0), extensions=[frontend_extension()])) as live:
            post(live.url, "/api/settings", {"Comfy.TutorialCompleted": True})
            yield live
    finally:
        engine.close()


@pytest.fixture(scope="module")
def page(server: LiveServer) -> Iterator[Any]:
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.console = console  # type: ignore[attr-defined]
            page.goto(server.url + "/")
            page.wait_for_function("() => window.app?.graph && document.querySelector('canvas#graph-canvas')",
                                   timeout=BOOT_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def post(url: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        raw = answer.read()
    return json.loads(raw) if raw else None


def client_id(page: Any) -> str:
    return page.evaluate("() => window.app.api.clientId ?? window.app.api.initialClientId")


def load_api(page: Any, prompt: dict[str, Any], name: str) -> None:
    page.evaluate("async ([prompt, name]) => { await window.app.loadApiJson(prompt, name); }", [prompt, name])


def queue_from_editor(page: Any) -> None:
    page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")


def wait_for_text(page: Any, value: str, *, starts: bool = False) -> None:
    """Until a node's text box (Show Text, Preview Any) shows `value` (or starts with it)."""
    page.wait_for_function(
        "([value, starts]) => [...document.querySelectorAll('textarea')]"
        ".some(t => starts ? t.value.startsWith(value) : t.value === value)",
        arg=[value, starts], timeout=RUN_TIMEOUT_MS)


def test_queue_panel_shows_a_running_and_a_finished_job(server: LiveServer, page: Any, home: Path) -> None:
    gate = home / "release"
    load_api(page, {"1": {"class_type": "TextValue", "inputs": {"value": "finished first"}},
                    "2": {"class_type": "DisplayText", "inputs": {"text": ["1", 0]}}}, "finished")
    queue_from_editor(page)
    wait_for_text(page, "finished first")
    post(server.url, "/api/prompt", {"prompt": {"1": {"class_type": "Gate", "inputs": {
        "label": "held", "release": str(gate)}}}, "client_id": client_id(page)})
    try:
        page.get_by_text("1 active").wait_for(timeout=RUN_TIMEOUT_MS)  # from progress_state: a running node
        page.get_by_test_id("queue-overlay-toggle").click()
        panel = page.get_by_text("1 running")
        panel.wait_for(timeout=RUN_TIMEOUT_MS)
        page.get_by_text("Job #1").wait_for(timeout=RUN_TIMEOUT_MS)  # the finished one, from /api/jobs history
        page.screenshot(path=str(ARTIFACTS / "queue_panel.png"))
    finally:
        gate.write_text("go")
    page.get_by_text("0 active").wait_for(timeout=RUN_TIMEOUT_MS)
    page.get_by_test_id("queue-overlay-toggle").click()


def test_a_10000_pass_loop_shows_its_result(page: Any) -> None:
    load_api(page, countdown(10_000), "long loop")
    queue_from_editor(page)
    wait_for_text(page, "0")
    shown = page.evaluate("() => window.app.graph.getNodeById('show').widgets"
                          ".find(w => w.name === 'shown_text')?.value")
    assert shown == "0"


SCRIPTS = {
    "agents/customer_service.json": (
        [text('{"category": "faq"}'), calls(("faq_lookup", {"query": "refund how long"})),
         text("Refunds arrive 5-7 working days after we receive your return.")],
        "Refunds arrive 5-7 working days"),
    "agents/debate.json": (
        [text("Cars pollute."), text("Shops need customers."), text("Buses bring them."),
         text("Not everyone can walk.")],
        "proponent: Cars pollute."),
    "agents/research_agent.json": (
        [calls(("fetch", {"url": "https://modelcontextprotocol.io/"})),
         text("MCP is an open protocol (source: https://modelcontextprotocol.io/).")],
        "MCP is an open protocol"),
    "media/illustrated_story.json": ([streamed(STORY), image_reply()], STORY),
    "media/screenshot_qa.json": ([streamed("Order 4711 has shipped and arrives on Friday.")],
                                 "Order 4711 has shipped"),
}
EXPECTED = {
    "hello.json": "Hello, world! Welcome to partyflow.",
    "word_stats.json": "The Quick Brown Fox | Jumps Over | The Lazy Dog",
    "countdown_loop.json": "liftoff in: 5 4 3 2 1",
    "media/scanned_page_to_kb.json": "Travel policy",
}
STREAMED = {"media/illustrated_story.json": STORY, "media/screenshot_qa.json": "Order 4711 has shipped"}
ACTIVITY = {"agents/customer_service.json": "calls faq_lookup", "agents/debate.json": "proponent: Cars pollute."}
EXAMPLE_FILES = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.json"))


def test_the_list_of_examples_is_covered() -> None:
    assert set(EXAMPLE_FILES) == {*EXPECTED, *SCRIPTS, "hello_ui.json"}


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_every_example_loads_and_runs_from_the_editor(page: Any, openai: OpenAIServer, name: str) -> None:
    workflow = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    openai.reset()
    if name in SCRIPTS:
        openai.script(*SCRIPTS[name][0])
    if "nodes" in workflow:  # saved by the editor (UI format)
        page.evaluate("async (w) => { await window.app.loadGraphData(w); }", workflow)
    else:
        load_api(page, workflow, name)
        # what the editor would queue holds every input the example sets (defaults it adds are fine)
        queued = page.evaluate("async () => (await window.app.graphToPrompt()).output")
        for node_id, node in workflow.items():
            assert node_id in queued, f"{name}: node {node_id} lost in the editor"
            for input_name, value in node["inputs"].items():
                assert queued[node_id]["inputs"].get(input_name) == value, \
                    f"{name}: {node_id}.{input_name} lost in the editor"
    queue_from_editor(page)
    expected = "Hello, editor!" if name == "hello_ui.json" else EXPECTED.get(name) or SCRIPTS[name][1]
    wait_for_text(page, expected, starts=True)
    if name in ACTIVITY:  # agent steps and round-table turns shown on their node while it ran
        page.wait_for_function(
            "(line) => [...document.querySelectorAll('textarea[data-partyflow-activity]')]"
            ".some(t => t.value.split('\\n').some(l => l.includes(line)))",
            arg=ACTIVITY[name], timeout=RUN_TIMEOUT_MS)
    if name in STREAMED:  # a Chat node's reply shown on it as it streamed, then its tokens
        page.wait_for_function(
            "(start) => [...document.querySelectorAll('textarea[data-partyflow-stream]')]"
            ".some(t => t.value.startsWith(start) && t.value.includes('completion tokens'))",
            arg=STREAMED[name], timeout=RUN_TIMEOUT_MS)
    unknown = [m for m in page.console if "Unknown message type partyflow" in m]
    assert unknown == []


def test_unknown_provider_message_in_the_error_panel(page: Any) -> None:
    load_api(page, {"1": {"class_type": "APIModelLoader", "inputs": {"provider": "nowhere", "model": ""}},
                    "2": {"class_type": "LLMChat", "inputs": {"model": ["1", 0], "system_prompt": "",
                                                              "user_prompt": "hi"}},
                    "3": {"class_type": "DisplayText", "inputs": {"text": ["2", 0]}}}, "unknown provider")
    try:
        queue_from_editor(page)  # the app reports the refusal itself; the call may also reject with it
    except playwright_api.Error as error:
        assert "Prompt execution failed" in str(error)
    page.get_by_text("View details").click()
    page.get_by_label("Info for API Model Loader - provider").click()
    message = page.get_by_text("unknown provider 'nowhere'")
    message.wait_for(timeout=RUN_TIMEOUT_MS)
    assert "Add a [providers.nowhere] table" in message.inner_text()
    page.screenshot(path=str(ARTIFACTS / "unknown_provider.png"))


def test_a_workflow_written_in_python_opens_and_runs_in_the_editor(home: Path, page: Any) -> None:
    """Issue 21: `Workflow.to_ui()` is what the editor opens: its nodes, titles and group show, and it runs."""
    from partyflow import Workflow

    engine = Engine(home=home)  # the builder reads the same installed nodes the server has
    try:
        wf = Workflow(engine)
        with wf.group("greeting"):
            name = wf.TextValue(value="Python").titled("who")
            text = wf.TextTemplate(template="Hello from {a}!", a=name.text)
        wf.DisplayText(text=text.text).titled("shown")
        exported = wf.to_ui()
    finally:
        engine.close()
    page.evaluate("async (w) => { await window.app.loadGraphData(w); }", exported)
    titles = page.evaluate("() => window.app.graph._nodes.map(n => n.title).sort()")
    assert {"who", "shown"} <= set(titles) and len(titles) == 3
    assert page.evaluate("() => window.app.graph._groups.map(g => g.title)") == ["greeting"]
    queue_from_editor(page)
    wait_for_text(page, "Hello from Python!")
    page.screenshot(path=str(ARTIFACTS / "workflow_from_python.png"))


def test_providers_page_lists_tests_and_adds_a_provider(page: Any, openai: OpenAIServer, home: Path) -> None:
    openai.reset()
    openai.script(text("Hello from the test model."))
    page.locator("button", has_text="Providers").first.click()
    row = page.locator("[data-provider='default']")
    row.wait_for(timeout=RUN_TIMEOUT_MS)
    assert "no key" in row.inner_text() and openai.url in row.inner_text()
    row.locator("[data-provider-test='default']").click()
    status = page.locator("[data-partyflow-provider-status]")
    page.wait_for_function("() => document.querySelector('[data-partyflow-provider-status]')?.textContent"
                           ".includes('Hello from the test model.')", timeout=RUN_TIMEOUT_MS)

    form = {"name": "ollama", "type": "openai_compat", "base_url": "http://127.0.0.1:11434/v1",
            "model": "qwen2.5:7b-instruct", "api_key_env": "OLLAMA_KEY"}
    for field, value in form.items():
        page.locator(f"form input[name='{field}']").fill(value)
    page.locator("[data-provider-save]").click()
    page.locator("[data-provider='ollama']").wait_for(timeout=RUN_TIMEOUT_MS)
    assert "OLLAMA_KEY is NOT set" in page.locator("[data-provider='ollama']").inner_text()
    config = (home / "config.toml").read_text(encoding="utf-8")
    assert '[providers.ollama]\ntype = "openai_compat"' in config and "[providers.default]" in config

    page.locator("form input[name='name']").fill("leaky")
    page.locator("form input[name='api_key_env']").fill("sk-1234567890abcdef")  # a key, not a variable name
    page.locator("[data-provider-save]").click()
    page.wait_for_function("() => document.querySelector('[data-partyflow-provider-status]')?.textContent"
                           ".startsWith('not saved')", timeout=RUN_TIMEOUT_MS)
    assert "sk-1234567890abcdef" not in (home / "config.toml").read_text(encoding="utf-8")
    assert "not a key" in status.inner_text()
    with AuditLog(Home(home)) as audit:
        changes = [(e.pack, e.result, e.details) for e in audit.entries() if e.action == "provider.set"]
    assert [(name, result) for name, result, _ in changes] == [("ollama", "ok"), ("leaky", "error")]
    assert "sk-1234567890abcdef" not in json.dumps(changes)
    page.locator("button", has_text="Providers").first.click()


def test_image_and_audio_outputs_show_in_the_editor(page: Any) -> None:
    """Issue 13: IMAGE and AUDIO outputs preview in the editor through /view (a drawn image, offline speech)."""
    load_api(page, {"1": {"class_type": "EmptyImage", "inputs": {"width": 96, "height": 64, "batch_size": 1,
                                                                  "color": 0x3366CC}},
                    "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
                    "3": {"class_type": "SpeakOffline", "inputs": {"text": "partyflow speaks", "voice": "en",
                                                                   "words_per_minute": 170}},
                    "4": {"class_type": "PreviewAudio", "inputs": {"audio": ["3", 0]}}}, "media outputs")
    queue_from_editor(page)
    # the image preview is drawn on the canvas from the node's loaded images; the audio is a DOM player
    page.wait_for_function("() => { const imgs = window.app.graph.getNodeById(2)?.imgs || [];"
                           " return imgs.some(i => i.src.includes('/view?') && i.complete && i.naturalWidth === 96); }",
                           timeout=RUN_TIMEOUT_MS)
    page.wait_for_function("() => [...document.querySelectorAll('audio')].some(a => (a.src || '').includes('/view?'))",
                           timeout=RUN_TIMEOUT_MS)
    page.screenshot(path=str(ARTIFACTS / "media_outputs.png"))
