"""Single sign-on (issue 17): partyflow against a real OIDC provider on 127.0.0.1, over HTTP as a browser would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from tests.server.live import LiveServer, make_home, start_server
from tests.server.oidc_provider import OidcProvider, Person

from partyflow import Engine
from partyflow.access import AccessStore
from partyflow.access.oidc import OidcConfig, user_name
from partyflow.config import ConfigError
from partyflow.manager.audit import AuditLog
from partyflow.server import ServerConfig
from partyflow.server.config import ServerConfigError

SECRET_ENV = "PARTYFLOW_TEST_OIDC_SECRET"


def oidc_toml(issuer: str, *, extra: str = "") -> str:
    return f"""
[access.oidc]
name = "Test SSO"
issuer = "{issuer}"
client_id = "partyflow"
client_secret_env = "{SECRET_ENV}"
scopes = ["openid", "profile", "groups"]
groups_claim = "groups"
roles = {{ "ml-admins" = "admin", "analysts" = "runner" }}
{extra}"""


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    idp = OidcProvider().start()
    yield idp
    idp.stop()


@pytest.fixture(scope="module")
def server(provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = make_home(tmp_path_factory.mktemp("oidc"))
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(oidc_toml(provider.url), encoding="utf-8")
    os.environ[SECRET_ENV] = provider.client_secret  # read once, when the server starts
    try:
        engine = Engine(home=home, builtin_packs=("core",))
        with AccessStore(engine.home.state_db) as store:
            store.add_user("root", "admin", password="root-password")  # a local account
        live = start_server(engine, ServerConfig(port=0, shutdown_grace_s=1.0))
    finally:
        del os.environ[SECRET_ENV]
    provider.redirect_uris.add(live.url + "/login/oidc/callback")
    yield live
    live.stop()
    engine.close()


@pytest.fixture(autouse=True)
def honest_provider(provider: OidcProvider) -> Iterator[None]:
    yield
    provider.person = Person("u-1", "ada", ["ml-admins"])
    provider.sign_with_other_key = provider.expired = False
    provider.nonce_override = None


def sign_in(server: LiveServer, browser: requests.Session | None = None) -> tuple[requests.Session, requests.Response]:
    """The whole dance, following redirects: partyflow -> provider -> partyflow's callback."""
    browser = browser or requests.Session()
    answer = browser.get(server.url + "/login/oidc?next=/", timeout=30)
    return browser, answer


def callback_url(server: LiveServer, browser: requests.Session) -> str:
    """Start a login and stop at the provider's redirect back to us: the callback URL with code and state."""
    start = browser.get(server.url + "/login/oidc", timeout=30, allow_redirects=False)
    assert start.status_code == 302
    at_provider = browser.get(start.headers["Location"], timeout=30, allow_redirects=False)
    assert at_provider.status_code == 302, at_provider.text
    return at_provider.headers["Location"]


def audit_entries(server: LiveServer) -> list[tuple[str, str, str, str]]:
    with AuditLog(server.engine.home) as log:
        return [(e.action, e.actor, e.result, e.details or "") for e in log.entries()
                if e.action == "access.login.oidc"]


def test_login_page_links_to_the_provider(server: LiveServer) -> None:
    page = requests.get(server.url + "/login?next=/", timeout=30)
    assert "Log in with Test SSO" in page.text and 'href="/login/oidc?next=/"' in page.text
    # with single sign-on configured there is no open local mode: every data route needs a login
    assert requests.get(server.url + "/queue", timeout=30).status_code == 401


def test_full_login_maps_groups_to_a_role(server: LiveServer, provider: OidcProvider) -> None:
    start = requests.get(server.url + "/login/oidc?next=/", timeout=30, allow_redirects=False)
    target = urlsplit(start.headers["Location"])
    query = parse_qs(target.query)
    assert f"{target.scheme}://{target.netloc}" == provider.url and target.path == "/authorize"
    assert query["code_challenge_method"] == ["S256"] and query["state"] and query["nonce"]
    assert "openid" in query["scope"][0].split()

    browser, landed = sign_in(server)
    assert landed.status_code == 200 and landed.url == server.url + "/login/oidc/callback?" + urlsplit(
        landed.url).query and 'url=/"' in landed.text
    cookie = next(c for c in browser.cookies if c.name == "partyflow_session")
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert browser.get(server.url + "/queue", timeout=30).status_code == 200
    assert browser.get(server.url + "/v2/snapshot/getlist", timeout=30).status_code == 200  # admin
    with AccessStore(server.engine.home.state_db) as store:
        ada = store.user("ada")
    assert ada.role == "admin" and ada.sso and not ada.has_password

    # the next login carries the groups of now: the role follows them
    listed = subprocess.run([sys.executable, "-m", "partyflow", "users", "list", "--home",
                             str(server.engine.home.root)], capture_output=True, text=True, timeout=120)
    assert "single sign-on" in listed.stdout and "password" in listed.stdout  # ada, and the local root

    provider.person = Person("u-1", "ada", ["analysts", "unmapped"])
    browser, _ = sign_in(server)
    assert browser.get(server.url + "/queue", timeout=30).status_code == 200
    assert browser.get(server.url + "/v2/snapshot/getlist", timeout=30).status_code == 403  # now a runner
    entries = audit_entries(server)
    assert ("access.login.oidc", "ada", "ok") in {e[:3] for e in entries}
    assert any("role admin -> runner" in e[3] for e in entries)


def refusal(server: LiveServer, *, status: int) -> str:
    browser, answer = sign_in(server)
    assert answer.status_code == status, answer.text
    assert not any(c.name == "partyflow_session" for c in browser.cookies)
    assert browser.get(server.url + "/queue", timeout=30).status_code == 401
    return answer.text


def test_a_token_signed_by_another_key_is_refused(server: LiveServer, provider: OidcProvider) -> None:
    provider.sign_with_other_key = True
    assert "signature does not match" in refusal(server, status=401)


def test_an_expired_token_is_refused(server: LiveServer, provider: OidcProvider) -> None:
    provider.expired = True
    assert "the ID token expired at" in refusal(server, status=401)


def test_a_wrong_nonce_is_refused(server: LiveServer, provider: OidcProvider) -> None:
    provider.nonce_override = "someone-elses-nonce"
    assert "nonce does not match" in refusal(server, status=401)


def test_a_user_in_no_mapped_group_is_refused_and_audited(server: LiveServer, provider: OidcProvider) -> None:
    provider.person = Person("u-2", "bob", ["interns"])
    assert "none of your groups at Test SSO is given a role" in refusal(server, status=403)
    with AccessStore(server.engine.home.state_db) as store:
        assert "bob" not in {u.name for u in store.users()}
    assert any(e[1:3] == ("bob", "refused") and "none of your groups" in e[3] for e in audit_entries(server))


def test_a_provider_account_cannot_take_over_a_local_one(server: LiveServer, provider: OidcProvider) -> None:
    provider.person = Person("u-3", "root", ["ml-admins"])
    assert "belongs to another account" in refusal(server, status=403)
    provider.person = Person("u-other", "ada", ["ml-admins"])  # same name, another person at the provider
    assert "belongs to another account" in refusal(server, status=403)


def test_a_wrong_state_is_refused(server: LiveServer, provider: OidcProvider) -> None:
    browser = requests.Session()
    url = callback_url(server, browser)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    forged = f"{server.url}{parts.path}?{urlencode({**query, 'state': 'forged-state'})}"
    answer = browser.get(forged, timeout=30)
    assert answer.status_code == 400 and "unknown or expired (the state does not match)" in answer.text

    # a real callback opened in another browser (an attacker's link): the state cookie is missing
    url = callback_url(server, requests.Session())
    answer = browser.get(url, timeout=30)
    assert answer.status_code == 400 and "started in another browser" in answer.text
    assert browser.get(server.url + "/queue", timeout=30).status_code == 401

    # the provider's own refusal (the user pressed Cancel) is shown, not a traceback
    denied = browser.get(server.url + "/login/oidc/callback?error=access_denied&error_description=cancelled",
                         timeout=30)
    assert denied.status_code == 401 and "Test SSO refused the login: cancelled" in denied.text


def test_a_code_is_used_once(server: LiveServer, provider: OidcProvider) -> None:
    browser = requests.Session()
    url = callback_url(server, browser)
    assert browser.get(url, timeout=30).status_code == 200
    again = browser.get(url, timeout=30)  # replayed: the attempt is gone
    assert again.status_code == 400


@pytest.mark.parametrize("extra, message", [
    ('default_role = "boss"', "unknown role 'boss'"),
    ('roles = { "ml-admins" = "superuser" }', "group 'ml-admins': unknown role 'superuser'"),
    ('client_secret = "hunter2"', "unknown key(s) client_secret"),
])
def test_config_mistakes_are_named(extra: str, message: str) -> None:
    import tomllib

    text = oidc_toml("https://idp.example.com")
    if extra.startswith("roles"):
        text = text.replace('roles = { "ml-admins" = "admin", "analysts" = "runner" }', extra)
    else:
        text += extra
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        OidcConfig.from_config(tomllib.loads(text))


def test_config_refuses_plain_http_providers_and_names_a_missing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    import tomllib

    with pytest.raises(ConfigError, match="must be an https URL"):
        OidcConfig.from_config(tomllib.loads(oidc_toml("http://idp.example.com")))
    config = OidcConfig.from_config(tomllib.loads(oidc_toml("https://idp.example.com")))
    assert config is not None
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"the environment variable {SECRET_ENV} is not set"):
        config.client_secret()
    assert config.role_for(["analysts", "ml-admins"]) == "admin" and config.role_for(["x"]) is None


def test_user_names_are_sanitized() -> None:
    assert user_name("Ada Lovelace@corp.example") == "Ada_Lovelace_corp.example"
    assert user_name("-.x") == "x" and user_name("...") is None and len(user_name("a" * 200) or "") == 64


def test_server_start_names_a_missing_secret(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(oidc_toml("https://idp.example.com"), encoding="utf-8")
    os.environ.pop(SECRET_ENV, None)
    engine = Engine(home=home, builtin_packs=("core",))
    try:
        from partyflow.server import create_app

        with pytest.raises(ServerConfigError, match=SECRET_ENV):
            create_app(engine, ServerConfig(port=0))
    finally:
        engine.close()


def test_an_unreachable_or_mismatched_provider_is_named(provider: OidcProvider) -> None:
    import asyncio
    import socket

    from partyflow.access import AccessError
    from partyflow.access.oidc import OidcClient

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for issuer, reason in ((closed, "could not fetch the discovery document"),
                           (provider.url + "/other", "discovery document from .* HTTP 404"),
                           (provider.url.replace("127.0.0.1", "localhost"), "names issuer")):
        client = OidcClient(OidcConfig(issuer=issuer, client_id="partyflow", default_role="viewer"))
        with pytest.raises(AccessError, match=reason) as refused:
            asyncio.run(client.begin("http://127.0.0.1/login/oidc/callback", "/"))
        assert refused.value.status == 502


@pytest.mark.parametrize("target", ["//evil.example/", "/\t/evil.example/", "https://evil.example/", "/\\evil"])
def test_only_local_paths_follow_a_login(server: LiveServer, target: str) -> None:
    browser = requests.Session()
    start = browser.get(server.url + "/login/oidc", params={"next": target}, timeout=30, allow_redirects=False)
    at_provider = browser.get(start.headers["Location"], timeout=30, allow_redirects=False)
    landed = browser.get(at_provider.headers["Location"], timeout=30)
    assert landed.status_code == 200 and 'content="0;url=/"' in landed.text
