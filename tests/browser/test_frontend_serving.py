"""Serving the frontend files (no browser): the installed package, --front-end-root, and what stays an API route."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from tests.server_openai.live_server import LiveServer

from partyflow.engine.engine import Engine
from partyflow.server import frontend
from partyflow.server.app import create_app
from partyflow.server.config import ServerConfig
from partyflow.server.frontend import FrontendNotFound, frontend_extension


def fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = Engine(home=tmp_path_factory.mktemp("frontend") / "home", load_custom_nodes=False)
    yield engine
    engine.close()


def serve(engine: Engine, root: Path | None = None) -> LiveServer:
    return LiveServer(lambda: create_app(engine, ServerConfig(port=0), extensions=[frontend_extension(root)]))


def test_installed_frontend_is_served_without_hiding_the_api(engine: Engine) -> None:
    with serve(engine) as server:
        status, kind, body = fetch(server.url + "/")
        assert status == 200 and kind.startswith("text/html") and b'id="vue-app"' in body
        assert fetch(server.url + "/materialdesignicons.min.css")[0] == 200
        status, kind, body = fetch(server.url + "/object_info/DisplayText")
        assert status == 200 and "DisplayText" in json.loads(body)
        assert json.loads(fetch(server.url + "/templates/index.json")[2]) == []
        assert fetch(server.url + "/nope.js")[0] == 404


@pytest.mark.parametrize("path", ["/../pyproject.toml", "/%2e%2e/%2e%2e/pyproject.toml", "/..%2f..%2fREADME.md",
                                  "/static/../index.html/../../x"])
def test_no_file_outside_the_frontend(engine: Engine, tmp_path: Path, path: str) -> None:
    root = tmp_path / "dist"
    root.mkdir()
    (root / "index.html").write_text("<html>custom</html>")
    (tmp_path / "pyproject.toml").write_text("secret")
    (tmp_path / "README.md").write_text("secret")
    with serve(engine, root) as server:
        status, _, body = fetch(server.url + path)
        assert status in (403, 404) and b"secret" not in body


def test_front_end_root_replaces_the_package(engine: Engine, tmp_path: Path) -> None:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<html>custom build</html>")
    (root / "assets" / "app.js").write_text("console.log('custom')")
    with serve(engine, root) as server:
        assert fetch(server.url + "/")[2] == b"<html>custom build</html>"
        assert fetch(server.url + "/assets/app.js")[2] == b"console.log('custom')"


def test_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FrontendNotFound, match="holds no index.html"):
        frontend_extension(tmp_path)
    monkeypatch.setitem(sys.modules, frontend.FRONTEND_PACKAGE, None)  # as if not installed
    with pytest.raises(FrontendNotFound, match="pip install comfyui-frontend-package"):
        frontend_extension()


def test_extension_mounts_on_a_bare_app() -> None:
    app = web.Application()
    frontend_extension()(app)
    paths = {getattr(r, "canonical", "") for r in app.router.resources()}
    assert "/" in paths and "/templates/index.json" in paths
