"""The editor's built-in manager dialog on partyflow, in Debian's headless Chromium (issue 11, item 3).

A real catalog channel on a loopback HTTP server lists one pack (a real zip archive). The dialog browses it (its
registry and Algolia calls redirected to the server by partyflow's extension; any request that still leaves the
machine fails the test), installs the pack and disables it, each through the same policy, scan and audit log the
CLI uses.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import playwright.sync_api as playwright_api
import pytest
from tests.browser.test_frontend import ARTIFACTS, BOOT_TIMEOUT_MS, CHROMIUM, CHROMIUM_ARGS
from tests.manager_catalog.helpers import Served, serve
from tests.server.live import make_home
from tests.server_manager.world import NODE_CLASS, PACK_ID, catalog_document, pack_zip, write_config
from tests.server_openai.live_server import LiveServer

from partyflow.config import Home
from partyflow.engine.engine import Engine
from partyflow.manager.audit import AuditLog
from partyflow.server.app import create_app
from partyflow.server.config import ServerConfig
from partyflow.server.frontend import frontend_extension

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def channel() -> Iterator[Served]:
    archive = pack_zip("tidy", NODE_CLASS)
    routes: dict[str, Any] = {}
    with serve(routes) as served:
        routes["/custom-node-list.json"] = catalog_document(served.url, archive)
        routes["/extension-node-map.json"] = {"https://example.org/tidy": [[NODE_CLASS], {"title_aux": "Tidy"}]}
        routes["/tidy.zip"] = archive
        yield served


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, channel: Served) -> Path:
    home = make_home(tmp_path_factory.mktemp("manager-dialog"))
    write_config(home, channel.url, "normal")
    return home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[LiveServer]:
    engine = Engine(home=home, builtin_packs=("core",))
    try:
        with LiveServer(lambda: create_app(engine, ServerConfig(port=0), extensions=[frontend_extension()])) as live:
            request = urllib.request.Request(f"{live.url}/api/settings", method="POST",
                                             data=json.dumps({"Comfy.TutorialCompleted": True}).encode(),
                                             headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=10).close()
            yield live
    finally:
        engine.close()


def outside(url: str) -> bool:
    """A pack request to the Comfy Registry or Algolia, which partyflow's dialog must never make. (The editor's own
    release-notes check at boot, before extensions load, is not the manager's and is left to fail offline.)"""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    registry = host == "api.comfy.org" and parsed.path.startswith(("/nodes", "/bulk", "/publishers"))
    return registry or host.endswith((".algolia.net", ".algolianet.com"))


def open_missing_nodes(page: Any, attempts: int = 3) -> None:
    """Open the dialog's "Missing Nodes" tab and wait for its "Install All" button.

    Once in a full CI run (never alone, nor in repeated runs of this folder) the tab stayed empty for a minute: the
    frontend infers a missing node's pack once per visit of the tab, and a lookup lost then is not retried. A user
    would open the tab again, so the test does too (bounded); each empty visit is kept in the artifacts to diagnose.
    """
    for attempt in range(1, attempts + 1):
        page.get_by_text("Missing Nodes").click()
        try:
            page.get_by_text("Install All").wait_for(timeout=TIMEOUT_MS // attempts)
            return
        except playwright_api.TimeoutError:
            page.screenshot(path=str(ARTIFACTS / f"manager_missing_empty_{attempt}.png"))
            if attempt == attempts:
                raise
            page.get_by_text("All installed").click()


def installed(server: LiveServer) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.url}/api/v2/customnode/installed", timeout=10) as answer:
        return json.loads(answer.read())


def test_install_and_disable_a_pack_from_the_manager_dialog(server: LiveServer, home: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    escaped: list[str] = []
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # nothing of the manager may reach the internet: the registry and Algolia are answered locally
            page.route(outside, lambda route: (escaped.append(route.request.url), route.abort()))
            page.goto(server.url + "/")
            page.wait_for_function("() => window.app?.graph && document.querySelector('canvas#graph-canvas')",
                                   timeout=BOOT_TIMEOUT_MS)
            # a workflow using the pack's node, which is not installed yet
            page.evaluate("async (type) => { await window.app.loadGraphData({last_node_id: 1, last_link_id: 0, "
                          "nodes: [{id: 1, type, pos: [100, 100], size: [200, 80], mode: 0, inputs: [], outputs: [],"
                          " properties: {}, widgets_values: []}], links: [], groups: [], config: {}, extra: {},"
                          " version: 0.4}); }", NODE_CLASS)
            page.get_by_label("Extensions").click()  # the manager button the editor shows with --enable-manager
            page.get_by_text("Tidy Nodes").wait_for(timeout=TIMEOUT_MS)  # from the channel, through the server
            page.screenshot(path=str(ARTIFACTS / "manager_browse.png"))
            open_missing_nodes(page)  # "install missing nodes": the pack that provides TidyHello
            page.get_by_text("Tidy Nodes").wait_for(timeout=TIMEOUT_MS)

            page.get_by_role("button", name="Install", exact=True).click()
            page.get_by_text("To apply changes, please restart").first.wait_for(timeout=TIMEOUT_MS)
            assert installed(server)[PACK_ID]["enabled"] is True
            assert (home / "custom_nodes" / PACK_ID / "__init__.py").is_file()

            page.get_by_text("All installed").click()
            switch = page.get_by_role("switch", name="Enable or disable pack").first
            switch.wait_for(timeout=TIMEOUT_MS)
            assert switch.get_attribute("aria-checked") == "true"
            page.screenshot(path=str(ARTIFACTS / "manager_installed.png"))
            switch.click()
            # the dialog turns the switch off once the disable task completed (its cm-task-completed message)
            playwright_api.expect(switch).to_have_attribute("aria-checked", "false", timeout=TIMEOUT_MS)
            assert installed(server)[PACK_ID]["enabled"] is False
            page.screenshot(path=str(ARTIFACTS / "manager_disabled.png"))
        finally:
            browser.close()
    assert escaped == []
    assert (home / "custom_nodes" / ".disabled" / PACK_ID).is_dir()
    with AuditLog(Home(home)) as audit:
        done = [(e.action, e.result, e.pack) for e in audit.entries() if "via http" in (e.actor or "")]
    assert done == [("install", "ok", PACK_ID), ("disable", "ok", PACK_ID)]
