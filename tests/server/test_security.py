"""Security: confined paths, the API token, the Origin/Host check, and no secrets in logs."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import aiohttp
import pytest
from tests.server.live import LiveServer, run

from partyflow.server import ServerConfig, ServerConfigError, create_app
from partyflow.server.logs import JsonFormatter, RedactSecrets

TOKEN = "s3cret-token-value"


def _raw_get(server: LiveServer, raw_path: str, **headers: str) -> int:
    """GET with the path sent exactly as written (no client-side normalisation of `..` or `%2e`)."""
    async def go() -> int:
        async with aiohttp.ClientSession(headers=server.headers) as http:
            url = aiohttp.client.URL(server.url + raw_path, encoded=True)
            async with http.get(url, headers=headers) as resp:
                return resp.status

    return run(go())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("do not serve")
    return secret


def test_view_refuses_traversal(server: LiveServer, outside: Path) -> None:
    home = server.engine.home
    (home.output / "ok.txt").write_text("fine")
    os.symlink(outside, home.output / "link.txt")
    os.symlink(outside.parent, home.input / "linkdir")
    assert _raw_get(server, "/view?filename=ok.txt") == 200
    attempts = [
        "/view?filename=../../outside/secret.txt",
        "/view?filename=secret.txt&subfolder=../../outside",
        f"/view?filename={outside}",
        f"/view?filename=secret.txt&subfolder={outside.parent}",
        "/view?filename=%2e%2e%2f%2e%2e%2foutside%2fsecret.txt",
        "/view?filename=secret.txt&subfolder=%2e%2e%2F%2e%2e%2Foutside",
        "/view?filename=..%5C..%5Coutside%5Csecret.txt",
        "/view?filename=link.txt",
        "/view?filename=secret.txt&type=input&subfolder=linkdir",
        "/view?filename=ok.txt%00.png",
        "/api/view?filename=..&subfolder=..",
    ]
    for attempt in attempts:
        assert _raw_get(server, attempt) in (400, 403, 404), attempt


def test_userdata_and_extensions_refuse_traversal(server: LiveServer, outside: Path) -> None:
    user_dir = server.engine.home.user / "default"
    user_dir.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, user_dir / "escape.json")
    attempts = [
        "/userdata/..%2F..%2F..%2Foutside%2Fsecret.txt",
        "/userdata/%2e%2e%2f%2e%2e%2f%2e%2e%2foutside%2fsecret.txt",
        "/userdata/" + str(outside).replace("/", "%2F"),
        "/userdata/escape.json",
        "/userdata?dir=..%2F..",
        "/userdata?dir=" + str(outside.parent),
        "/api/v2/userdata?path=..",
        "/extensions/gatepack/..%2F__init__.py",
        "/extensions/gatepack/%2e%2e/__init__.py",
        "/extensions/gatepack/../../../outside/secret.txt",
    ]
    for attempt in attempts:
        assert _raw_get(server, attempt) in (400, 403, 404), attempt

    async def writes() -> None:
        async with server.session() as http:
            for target in ("..%2F..%2Fevil.json", "%2e%2e%2f%2e%2e%2fevil.json", "%2Ftmp%2Fevil.json"):
                resp = await http.post(f"/userdata/{target}", data=b"x")
                assert resp.status in (400, 403, 404), target
            resp = await http.post("/userdata/ok.json/move/..%2F..%2Fevil.json")
            assert resp.status in (403, 404)
            form = aiohttp.FormData()
            form.add_field("image", b"x", filename="../../evil.png", content_type="image/png")
            body = await (await http.post("/upload/image", data=form)).json()
            stored = server.engine.home.input / body["name"]
            assert stored.is_file() and stored.resolve().parent == server.engine.home.input.resolve()
            form = aiohttp.FormData()
            form.add_field("image", b"x", filename="a.png", content_type="image/png")
            form.add_field("subfolder", "../../..")
            assert (await http.post("/upload/image", data=form)).status == 403
    run(writes())
    assert not list(server.engine.home.root.parent.rglob("evil.json"))


def test_public_address_needs_a_token(engine) -> None:
    with pytest.raises(ServerConfigError, match="--token"):
        create_app(engine, ServerConfig(host="0.0.0.0"))
    with pytest.raises(ServerConfigError):
        create_app(engine, ServerConfig(host="192.0.2.10"))
    create_app(engine, ServerConfig(host="0.0.0.0", token=TOKEN))
    create_app(engine, ServerConfig(host="0.0.0.0", insecure=True))
    assert ServerConfig(host="127.0.0.2").loopback and ServerConfig(host="localhost").loopback


def test_token_is_required_on_every_route(server_factory) -> None:
    server = server_factory(token=TOKEN)

    async def scenario() -> None:
        async with aiohttp.ClientSession(server.url) as http:
            for path in ("/object_info", "/api/queue", "/metrics", "/ws", "/gatepack/hello"):
                resp = await http.get(path)
                assert resp.status == 401, path
                assert (await resp.json())["error"]["type"] == "unauthorized"
            assert (await http.get("/queue", headers={"Authorization": "Bearer wrong-token"})).status == 401
            assert (await http.get("/queue", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(server.ws_url("c"))
            async with http.ws_connect(server.ws_url("c", token=TOKEN)) as ws:
                assert (await ws.receive_json())["type"] == "status"
        # A page opened with ?token= gets a cookie, so the page's own requests work without the token.
        async with aiohttp.ClientSession(server.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            assert (await browser.get(f"/system_stats?token={TOKEN}")).status == 200
            assert (await browser.get("/queue")).status == 200

    run(scenario())


def test_origin_and_host_checks(server: LiveServer) -> None:
    port = server.url.rsplit(":", 1)[1]

    async def scenario() -> None:
        async with server.session() as http:
            same = {"Origin": f"http://127.0.0.1:{port}"}
            assert (await http.post("/prompt", json={}, headers=same)).status == 400  # reached the handler
            evil = {"Origin": "http://evil.example"}
            resp = await http.post("/prompt", json={"prompt": {}}, headers=evil)
            assert resp.status == 403
            assert (await http.get("/queue", headers={"Origin": "http://127.0.0.1:1"})).status == 403
            assert (await http.get("/queue", headers={"Host": "evil.example", "Origin": "http://evil.example"})
                    ).status == 403  # DNS rebinding: a foreign name pointing at 127.0.0.1
            assert (await http.get("/queue", headers={"Host": f"localhost:{port}"})).status == 200
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(server.ws_url("x"), headers=evil)

    run(scenario())


def test_system_stats_hides_a_token_given_on_the_command_line() -> None:
    from partyflow.server.routes.info import _safe_argv

    argv = ["partyflow", "serve", "--token", TOKEN, f"--token={TOKEN}", "--port", "1"]
    assert TOKEN not in " ".join(_safe_argv(argv, TOKEN))
    assert _safe_argv(argv, TOKEN)[-2:] == ["--port", "1"]


def test_logs_never_contain_the_token() -> None:
    record = logging.LogRecord("partyflow.access", logging.INFO, __file__, 1,
                               "GET /ws?clientId=a&token=%s 101 Authorization: Bearer %s", (TOKEN, TOKEN), None)
    RedactSecrets([TOKEN]).filter(record)
    line = JsonFormatter().format(record)
    assert TOKEN not in line and "***" in line
    assert RedactSecrets().redact("GET /x?token=abc&y=1") == "GET /x?token=***&y=1"
