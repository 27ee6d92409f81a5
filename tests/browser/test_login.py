"""Logging in to the editor in Debian's headless Chromium (issue 17): the password form, and single sign-on
through the local OIDC provider's approval page; both land in the booted editor, whose API calls then succeed
with the session cookie. Waits on page conditions only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import playwright.sync_api as playwright_api  # a dev dependency: the browser test never skips
import pytest
from tests.browser.test_frontend import ARTIFACTS, BOOT_TIMEOUT_MS, CHROMIUM, CHROMIUM_ARGS
from tests.server.oidc_provider import OidcProvider, Person
from tests.server.test_oidc import SECRET_ENV, oidc_toml
from tests.server_openai.live_server import LiveServer

from partyflow.access import AccessStore
from partyflow.engine.engine import Engine
from partyflow.server.app import create_app
from partyflow.server.config import ServerConfig
from partyflow.server.frontend import frontend_extension

BOOTED = "() => window.app?.graph && document.querySelector('canvas#graph-canvas')"
API_CHECK = """async () => {
    const answers = {};
    for (const path of ['/api/queue', '/api/object_info/TextValue', '/api/settings']) {
        answers[path] = (await fetch(path)).status;
    }
    return answers;
}"""


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    idp = OidcProvider(consent_page=True, person=Person("u-7", "grace", ["ml-admins"])).start()
    yield idp
    idp.stop()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, provider: OidcProvider) -> Iterator[Engine]:
    home = tmp_path_factory.mktemp("login") / "home"
    home.mkdir(parents=True)
    (home / "config.toml").write_text(oidc_toml(provider.url), encoding="utf-8")
    engine = Engine(home=home, load_custom_nodes=False)
    with AccessStore(engine.home.state_db) as store:
        store.add_user("ada", "publisher", password="ada-password")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def server(provider: OidcProvider, engine: Engine) -> Iterator[LiveServer]:
    os.environ[SECRET_ENV] = provider.client_secret
    try:
        with LiveServer(lambda: create_app(engine, ServerConfig(port=0), extensions=[frontend_extension()])) as live:
            del os.environ[SECRET_ENV]  # read once, when the app was made
            provider.redirect_uris.add(live.url + "/login/oidc/callback")
            yield live
    finally:
        os.environ.pop(SECRET_ENV, None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})  # a fresh cookie jar per test
    page = context.new_page()
    page.unauthorized = []  # type: ignore[attr-defined]
    page.on("response", lambda r: page.unauthorized.append(f"{r.request.method} {r.url}")
            if r.status == 401 else None)
    try:
        yield page
    finally:
        context.close()


def wait_for_editor(page: Any, name: str) -> None:
    try:
        page.wait_for_function(BOOTED, timeout=BOOT_TIMEOUT_MS)
    except playwright_api.Error:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}_failed.png"))
        raise AssertionError(f"the editor did not boot after logging in; 401s: {page.unauthorized}") from None


def session_cookie(page: Any) -> dict[str, Any]:
    return next(c for c in page.context.cookies() if c["name"] == "partyflow_session")


def test_password_login_opens_the_editor(server: LiveServer, page: Any) -> None:
    page.goto(server.url + "/login?next=/")
    page.fill("#username", "ada")
    page.fill("#password", "wrong-password")
    page.click("button[type=submit]")
    page.get_by_text("wrong user name or password").wait_for()
    assert page.unauthorized == [f"POST {server.url}/login"]  # the refused attempt, and only that
    page.unauthorized.clear()
    page.fill("#username", "ada")
    page.fill("#password", "ada-password")
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/")
    wait_for_editor(page, "password_login")
    cookie = session_cookie(page)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate(API_CHECK) == {"/api/queue": 200, "/api/object_info/TextValue": 200, "/api/settings": 200}
    assert page.evaluate("async () => (await fetch('/api/v2/snapshot/getlist')).status") == 403  # a publisher
    assert not page.unauthorized, page.unauthorized


def test_single_sign_on_opens_the_editor(server: LiveServer, provider: OidcProvider, engine: Engine,
                                        page: Any) -> None:
    page.goto(server.url + "/login?next=/")
    page.get_by_role("link", name="Log in with Test SSO").click()
    page.wait_for_url(lambda url: url.startswith(provider.url + "/authorize?"))
    page.get_by_text("partyflow asks to sign you in as grace").wait_for()
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(server.url + "/")  # via the callback's page, which moves on by itself
    wait_for_editor(page, "oidc_login")
    assert session_cookie(page)["httpOnly"]
    assert page.evaluate(API_CHECK) == {"/api/queue": 200, "/api/object_info/TextValue": 200, "/api/settings": 200}
    assert page.evaluate("async () => (await fetch('/api/v2/snapshot/getlist')).status") == 200  # ml-admins
    assert not page.unauthorized, page.unauthorized
    with AccessStore(engine.home.state_db) as store:
        assert store.user("grace").role == "admin"
