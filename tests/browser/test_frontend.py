"""The official ComfyUI editor on our server, in Debian's real headless Chromium driven by Playwright.

No browser is downloaded: Playwright launches /usr/bin/chromium. The test waits on page conditions only (no
sleeps): the canvas and `window.app`, our categories among the registered node types and in the node library,
then a workflow loaded and queued through the page's own app, and the Show Text result in the node's text box.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import playwright.sync_api as playwright_api  # a dev dependency: the browser test never skips
import pytest
from tests.server_openai.live_server import LiveServer

from partyflow.engine.engine import Engine
from partyflow.server.app import create_app
from partyflow.server.config import ServerConfig
from partyflow.server.frontend import frontend_extension

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).parent / "artifacts"
MESSAGE = "hello from partyflow"
BOOT_TIMEOUT_MS = 90_000  # 2 shared cores: the 120 MB editor takes a while to parse on a cold start

if not CHROMIUM.exists():
    raise RuntimeError("Debian's chromium is required for the browser tests: apt-get install -y chromium")


def workflow() -> dict[str, Any]:
    """Two texts joined, shown by Show Text, in the editor's own (UI) format."""
    nodes = [
        {"id": 1, "type": "TextConcatenate", "pos": [80, 160], "size": [360, 260], "mode": 0, "inputs": [],
         "outputs": [{"name": "text", "type": "STRING", "links": [1], "slot_index": 0}],
         "properties": {"Node name for S&R": "TextConcatenate"}, "widgets_values": ["hello from", "partyflow", " "]},
        {"id": 2, "type": "DisplayText", "pos": [520, 160], "size": [400, 220], "mode": 0,
         "inputs": [{"name": "text", "type": "STRING", "link": 1}],
         "outputs": [{"name": "text", "type": "STRING", "links": [], "slot_index": 0}],
         "properties": {"Node name for S&R": "DisplayText"}, "widgets_values": []},
    ]
    return {"last_node_id": 2, "last_link_id": 1, "nodes": nodes, "links": [[1, 1, 0, 2, 0, "STRING"]],
            "groups": [], "config": {}, "extra": {"ds": {"scale": 1, "offset": [0, 0]}}, "version": 0.4}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("browser") / "home"
    engine = Engine(home=home, load_custom_nodes=False)
    try:
        with LiveServer(lambda: create_app(engine, ServerConfig(port=0), extensions=[frontend_extension()])) as live:
            yield live
    finally:
        engine.close()


@pytest.fixture(scope="module")
def page(server: LiveServer) -> Iterator[Any]:
    ARTIFACTS.mkdir(exist_ok=True)
    failures: list[str] = []
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.on("pageerror", lambda error: failures.append(f"page error: {error}"))
            page.on("response", lambda r: failures.append(f"{r.status} {r.request.method} {r.url}")
                    if r.status >= 400 else None)
            page.failures = failures  # type: ignore[attr-defined]
            yield page
        finally:
            browser.close()
    if failures:
        (ARTIFACTS / "failed_requests.txt").write_text("\n".join(failures) + "\n", encoding="utf-8")


def skip_first_run_tour(url: str) -> None:
    """A fresh user gets the templates browser as a modal on first load; a returning user does not."""
    request = urllib.request.Request(f"{url}/api/settings", data=json.dumps({"Comfy.TutorialCompleted": True}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def test_editor_boots_runs_a_workflow_and_shows_the_text(server: LiveServer, page: Any) -> None:
    skip_first_run_tour(server.url)
    page.goto(server.url + "/")
    try:
        page.wait_for_function("() => window.app?.graph && document.querySelector('canvas#graph-canvas')",
                               timeout=BOOT_TIMEOUT_MS)
    except playwright_api.Error:
        page.screenshot(path=str(ARTIFACTS / "boot_failed.png"))
        raise AssertionError(f"the editor did not boot; failed requests: {page.failures}") from None

    categories = page.evaluate(
        "() => [...new Set(Object.values(LiteGraph.registered_node_types).map(t => t.category))]")
    ours = {c for c in categories if isinstance(c, str) and c.startswith("partyflow/")}
    assert {"partyflow/text", "partyflow/display", "partyflow/llm"} <= ours, categories

    # The node library sidebar lists our top-level category.
    library = page.get_by_role("button", name="Node Library")
    library.click()
    page.get_by_text("partyflow", exact=True).first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "node_library.png"))
    library.click()

    page.evaluate("async (workflow) => { await window.app.loadGraphData(workflow); }", workflow())
    page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    page.wait_for_function(
        "(message) => [...document.querySelectorAll('textarea')].some(t => t.value === message)",
        arg=MESSAGE, timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "frontend.png"))
    shown = page.evaluate(
        "() => window.app.graph.getNodeById(2).widgets.find(w => w.name === 'shown_text')?.value")
    assert shown == MESSAGE


