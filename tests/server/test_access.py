"""Users, roles and tokens on a real server (issue 17): one table decides every route, asserted for every role."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from tests.server.live import LiveServer, make_home, start_server

from partyflow import Engine
from partyflow.access import AccessStore
from partyflow.manager.audit import AuditLog
from partyflow.server import ServerConfig
from partyflow.server.access_rules import CHAT, PUBLIC, RULES, level_for
from partyflow.server.frontend import frontend_extension
from partyflow.server.openai_api import openai_extension

ROLES = ("viewer", "runner", "publisher", "admin")
RANK = {"read": 0, "run": 1, "publish": 2, "admin": 3}  # what each permission needs
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    home = make_home(tmp_path_factory.mktemp("access"))
    engine = Engine(home=home, builtin_packs=("core",))
    tokens = {}
    with AccessStore(engine.home.state_db) as store:
        for role in ROLES:
            store.add_user(role, role, password=f"{role}-password")
            tokens[role], _ = store.create_token(role)
        store.add_user("bot", "runner")
        tokens["chat-only"], _ = store.create_token("bot", scopes=("chat:echo",))
        tokens["expired"], _ = store.create_token("bot", expires_in=timedelta(minutes=1))
        store.conn.execute("UPDATE access_tokens SET expires = '2020-01-01T00:00:00+00:00' WHERE user = 'bot' "
                           "AND scopes IS NULL")
        store.add_user("gone", "admin")
        tokens["disabled"], _ = store.create_token("gone")
        store.set_disabled("gone", True)
        revoked, info = store.create_token("runner")
        store.revoke_token(info.id)
        tokens["revoked"] = revoked
    live = start_server(engine, ServerConfig(port=0, shutdown_grace_s=1.0), extensions=(openai_extension(engine), frontend_extension()))
    yield live, tokens
    live.stop()
    engine.close()


def _routes(live: LiveServer) -> set[tuple[str, str]]:
    routes = set()
    for route in live.app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD" or getattr(route.handler, "partyflow_pack_route", False):
            continue
        if type(resource).__name__ == "StaticResource":
            continue
        path = resource.canonical
        routes.add((route.method, path[len("/api"):] if path.startswith("/api/") else path))
    return routes


def test_every_route_has_a_rule(team: tuple[LiveServer, dict[str, str]]) -> None:
    live, _ = team
    missing = sorted(_routes(live) - set(RULES))
    assert not missing, f"routes without an access rule (add them to server/access_rules.py): {missing}"
    assert level_for("GET", "/no/such/route") == "admin"  # fail closed


def _call(live: LiveServer, method: str, path: str, token: str | None) -> requests.Response:
    concrete = path.replace("{prompt_id}", "nope").replace("{class_type}", "TextValue").replace(
        "{folder}", "checkpoints").replace("{id}", "Comfy.Locale").replace("{file}", "nothing.json").replace(
        "{dest}", "elsewhere.json").replace("{module}", "m").replace("{model}", "echo").replace(
        "{job_id}", "nope").replace("{pack}", "p").replace("{path}", "x.js").replace("{name}", "nope").replace(
        "{node_name}", "nope").replace("{directory_type}", "input").replace("{rest}", "x")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method == "POST":
        headers["Content-Type"] = "application/json"
    return requests.request(method, live.url + concrete, headers=headers, timeout=30, allow_redirects=False,
                            data="{}" if method == "POST" else None)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_what_the_table_gives(team: tuple[LiveServer, dict[str, str]], role: str) -> None:
    live, tokens = team
    refused, wrongly = [], []
    for (method, path), level in sorted(RULES.items(), key=lambda kv: kv[0]):
        if (method, path) not in _routes(live) or path in ("/login", "/logout", "/ws"):
            continue
        if (method, path) in {("POST", "/v2/manager/queue/start"), ("POST", "/v2/snapshot/restore"),
                              ("POST", "/v2/manager/queue/reset"), ("POST", "/history")} and role == "admin":
            continue  # allowed for admins and covered by the manager's own tests; not worth running here
        status = _call(live, method, path, tokens[role]).status_code
        if level == PUBLIC:
            allowed = True
        else:
            allowed = ROLE_RANK[role] >= RANK["run" if level == CHAT else str(level)]
        if allowed and status in (401, 403):
            wrongly.append((method, path, status))
        if not allowed and status != 403:
            refused.append((method, path, status))
    assert not wrongly, f"{role} was refused: {wrongly}"
    assert not refused, f"{role} was not refused: {refused}"


def test_without_credentials_only_public_routes_answer(team: tuple[LiveServer, dict[str, str]]) -> None:
    live, _ = team
    assert _call(live, "GET", "/object_info", None).status_code == 401
    assert _call(live, "GET", "/login", None).status_code == 200
    page = requests.get(live.url + "/", headers={"Accept": "text/html"}, allow_redirects=False, timeout=30)
    assert page.status_code == 302 and page.headers["Location"] == "/login"  # not an editor that only gets 401s
    assert requests.get(live.url + "/", headers={"Authorization": f"Bearer {team[1]['viewer']}"},
                        timeout=30).status_code == 200


@pytest.mark.parametrize("who, status, reason", [
    ("expired", 401, "expired on 2020-01-01"),
    ("revoked", 401, "was revoked on"),
    ("disabled", 403, "user 'gone' is disabled"),
])
def test_refused_tokens_say_why(team: tuple[LiveServer, dict[str, str]], who: str, status: int, reason: str) -> None:
    live, tokens = team
    response = _call(live, "GET", "/object_info", tokens[who])
    assert response.status_code == status and reason in response.json()["error"]["details"]


def test_unknown_tokens_reveal_nothing(team: tuple[LiveServer, dict[str, str]]) -> None:
    live, tokens = team
    real = tokens["runner"]
    answers = {_call(live, "GET", "/queue", t).json()["error"]["details"]
               for t in ("pf_000000000000_guess", real[:-4] + "abcd", "not-a-token")}
    assert len(answers) == 1 and "not valid" in answers.pop()


def test_a_chat_scoped_token_reaches_only_its_model(team: tuple[LiveServer, dict[str, str]], tmp_path: Path) -> None:
    live, tokens = team
    workflows = live.engine.home.user / "publisher" / "workflows"
    workflows.mkdir(parents=True, exist_ok=True)
    for model in ("echo", "secret"):
        (workflows / f"{model}.json").write_text(json.dumps(_published(model)))
    bot = {"Authorization": f"Bearer {tokens['chat-only']}"}
    models = requests.get(live.url + "/v1/models", headers=bot, timeout=30).json()
    assert [m["id"] for m in models["data"]] == ["echo"]
    runner = {"Authorization": f"Bearer {tokens['runner']}"}
    assert {m["id"] for m in requests.get(live.url + "/v1/models", headers=runner, timeout=30).json()["data"]} == {
        "echo", "secret"}
    reply = requests.post(live.url + "/v1/chat/completions", headers=bot, timeout=60,
                          json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "You said: hi"
    other = requests.post(live.url + "/v1/chat/completions", headers=bot, timeout=60,
                          json={"model": "secret", "messages": [{"role": "user", "content": "hi"}]})
    assert other.status_code == 404  # as if it did not exist
    assert _call(live, "GET", "/history", tokens["chat-only"]).status_code == 403


def _published(model: str) -> dict[str, object]:
    return {"last_node_id": 3, "last_link_id": 2, "version": 0.4, "groups": [], "config": {},
            "nodes": [
                {"id": 1, "type": "TextValue", "mode": 0, "inputs": [], "widgets_values": [""],
                 "outputs": [{"name": "text", "type": "STRING", "links": [1]}]},
                {"id": 2, "type": "TextTemplate", "mode": 0, "widgets_values": ["You said: {a}"],
                 "inputs": [{"name": "a", "type": "*", "link": 1}],
                 "outputs": [{"name": "text", "type": "STRING", "links": [2]}]},
                {"id": 3, "type": "DisplayText", "mode": 0, "inputs": [{"name": "text", "type": "STRING", "link": 2}],
                 "outputs": []}],
            "links": [[1, 1, 0, 2, 0, "STRING"], [2, 2, 0, 3, 0, "STRING"]],
            "extra": {"partyflow": {"publish": {"model": model, "input": {"node": 1, "input": "value"},
                                                "output": {"node": 2, "output": 0}}}}}


def test_each_user_has_their_own_data(team: tuple[LiveServer, dict[str, str]]) -> None:
    live, tokens = team
    for role in ("publisher", "admin"):
        saved = requests.post(live.url + "/userdata/workflows%2Fmine.json", data=json.dumps({"who": role}),
                              headers={"Authorization": f"Bearer {tokens[role]}"}, timeout=30)
        assert saved.status_code == 200, saved.text
    for role in ("publisher", "admin"):
        read = requests.get(live.url + "/userdata/workflows%2Fmine.json",
                            headers={"Authorization": f"Bearer {tokens[role]}", "comfy-user": "admin"}, timeout=30)
        assert read.json() == {"who": role}  # the header cannot pick another user's data
    users = requests.get(live.url + "/users", headers={"Authorization": f"Bearer {tokens['viewer']}"}, timeout=30)
    assert users.json() == {"storage": "server", "migrated": True}


def test_browser_login_sets_a_session_cookie(team: tuple[LiveServer, dict[str, str]]) -> None:
    live, _ = team
    browser = requests.Session()
    wrong = browser.post(live.url + "/login", data={"username": "runner", "password": "nope"}, timeout=30,
                         allow_redirects=False)
    assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
    done = browser.post(live.url + "/login", data={"username": "runner", "password": "runner-password",
                                                   "next": "//evil.example/"}, timeout=30, allow_redirects=False)
    assert done.status_code == 302 and done.headers["Location"] == "/"
    cookie = done.headers["Set-Cookie"]
    assert "partyflow_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert browser.get(live.url + "/queue", timeout=30).status_code == 200
    assert browser.get(live.url + "/v2/snapshot/getlist", timeout=30).status_code == 403
    browser.post(live.url + "/logout", timeout=30, allow_redirects=False)
    assert browser.get(live.url + "/queue", timeout=30).status_code == 401


def test_refused_privileged_requests_are_audited_with_the_user(team: tuple[LiveServer, dict[str, str]]) -> None:
    live, tokens = team
    assert _call(live, "POST", "/v2/manager/queue/task", tokens["runner"]).status_code == 403
    with AuditLog(live.engine.home) as log:
        denied = [e for e in log.entries() if e.action == "access.denied"]
    assert denied and denied[-1].actor == "runner" and "/v2/manager/queue/task" in (denied[-1].details or "")


def test_no_users_keeps_todays_loopback_behaviour(tmp_path: Path) -> None:
    engine = Engine(home=make_home(tmp_path), builtin_packs=("core",))
    live = start_server(engine, ServerConfig(port=0, shutdown_grace_s=1.0))
    try:
        assert requests.get(live.url + "/queue", timeout=30).status_code == 200
        assert requests.post(live.url + "/v2/manager/queue/reset", timeout=30).status_code != 403
    finally:
        live.stop()
        engine.close()


def test_cli_manages_users_and_tokens(tmp_path: Path) -> None:
    import subprocess
    import sys

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "partyflow", *args, "--home", str(tmp_path)], input=stdin,
                              capture_output=True, text=True, timeout=120)

    assert cli("users", "add", "ada", "--role", "publisher", "--password-stdin", stdin="long-password\n").returncode == 0
    typo = cli("users", "add", "bob", "--role", "boss", "--no-password")
    assert typo.returncode == 2 and "unknown role 'boss': use one of viewer, runner, publisher, admin" in typo.stderr
    created = cli("tokens", "create", "--user", "ada", "--expires", "30d", "--scope", "chat:bot", "--json")
    token = json.loads(created.stdout)
    assert token["token"].startswith("pf_") and token["scopes"] == ["chat:bot"]
    listed = json.loads(cli("tokens", "list", "--json").stdout)
    assert listed[0]["id"] == token["id"] and "token" not in listed[0]
    assert token["token"] not in (tmp_path / "state.sqlite").read_bytes().decode("latin-1")  # only a hash is kept
    assert cli("tokens", "revoke", token["id"]).returncode == 0
    assert cli("users", "remove", "ada", "--yes").returncode == 0
    assert cli("users", "remove", "ada", "--yes").returncode == 2
    with AuditLog(tmp_path / "state.sqlite") as log:
        actions = [e.action for e in log.entries()]
    assert {"access.user.add", "access.token.create", "access.token.revoke", "access.user.remove"} <= set(actions)


def test_users_see_and_touch_only_their_own_prompts(team: tuple[LiveServer, dict[str, str]], tmp_path: Path) -> None:
    """A runner's WebSocket never receives another user's events; nobody but an admin interrupts, cancels or
    deletes another user's prompt; a client id cannot be taken over."""
    import asyncio

    import aiohttp
    from tests.server.live import finished

    live, tokens = team
    with AccessStore(live.engine.home.state_db) as store:
        for name in ("amy", "ben"):
            if name not in {u.name for u in store.users()}:
                store.add_user(name, "runner")
        amy, _ = store.create_token("amy")
        ben, _ = store.create_token("ben")
    release = tmp_path / "release"

    def prompt(label: str) -> dict:
        return {"1": {"class_type": "Gate", "inputs": {"label": label, "release": str(release)}}}

    def post(token: str, path: str, body: dict) -> requests.Response:
        return requests.post(live.url + path, json=body, timeout=30, headers={"Authorization": f"Bearer {token}"})

    async def scenario() -> tuple[list[dict], list[dict], list[dict], str]:
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(live.ws_url("amy-tab", token=amy)) as amy_ws, \
                http.ws_connect(live.ws_url("amy-tab", token=ben)) as ben_ws, \
                http.ws_connect(live.ws_url("admin-tab", token=tokens["admin"])) as admin_ws:
            ben_hello = json.loads((await ben_ws.receive()).data)
            await amy_ws.receive()
            await admin_ws.receive()
            running = post(amy, "/prompt", {"prompt": prompt("amy-1"), "client_id": "amy-tab",
                                            "prompt_id": "amy-1", "extra_data": {"partyflow_user": "ben"}})
            assert running.status_code == 200, running.text
            waiting = post(amy, "/prompt", {"prompt": prompt("amy-2"), "prompt_id": "amy-2"})  # no client: broadcast
            assert waiting.status_code == 200
            assert post(ben, "/interrupt", {}).status_code == 403
            assert post(ben, "/queue", {"clear": True}).status_code == 403
            assert post(ben, "/queue", {"delete": ["amy-2"]}).status_code == 200
            assert [i[1] for i in requests.get(live.url + "/queue", headers={"Authorization": f"Bearer {ben}"},
                                               timeout=30).json()["queue_pending"]] == ["amy-2"]
            assert post(ben, "/api/jobs/amy-2/cancel", {}).json()["status"] == "forbidden"
            release.write_text("go")
            from tests.server.live import receive_until

            amy_seen = await receive_until(amy_ws, finished("amy-1"))
            admin_seen = await receive_until(admin_ws, lambda m: m["type"] == "executed"
                                             and m["data"]["prompt_id"] == "amy-2")
            # the queue's last status (empty again) reaches every socket after both prompts' events: whatever ben
            # was sent about them is in his socket before it
            ben_seen = await receive_until(ben_ws, lambda m: m["type"] == "status"
                                           and m["data"]["status"]["exec_info"]["queue_remaining"] == 0)
            return amy_seen, admin_seen, ben_seen, ben_hello["data"]["sid"]

    amy_seen, admin_seen, ben_seen, ben_sid = asyncio.run(scenario())
    assert ben_sid != "amy-tab"  # the id of another user's socket is not handed over
    assert any(m["type"] == "executed" and m["data"]["prompt_id"] == "amy-1" for m in amy_seen)
    assert {m["type"] for m in ben_seen} <= {"status"}, ben_seen  # queue sizes only, never amy's events
    history = requests.get(live.url + "/history/amy-1", headers={"Authorization": f"Bearer {amy}"}, timeout=30).json()
    assert history["amy-1"]["prompt"][3]["partyflow_user"] == "amy"  # the server says who queued it

