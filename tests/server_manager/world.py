"""Helpers for the manager route tests: pack archives, our catalog format, and a live server with the calls
the manager dialog makes."""

from __future__ import annotations

import hashlib
import io
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.manager_catalog.helpers import Served, make_pack
from tests.server.live import LiveServer, run

from partyflow.server.routes.manager import MANAGER

PACK_ID = "tidy-nodes"
NODE_CLASS = "TidyHello"


def pack_zip(folder: str, node_class: str) -> bytes:
    """A zip of a one-node ComfyUI pack inside a top folder, as release archives are laid out."""
    body = ("class Hello:\n    @classmethod\n    def INPUT_TYPES(cls):\n        return {'required': {}}\n"
            "    RETURN_TYPES = ('STRING',)\n    FUNCTION = 'run'\n    CATEGORY = 'test'\n"
            "    def run(self):\n        return ('hi',)\n"
            f"NODE_CLASS_MAPPINGS = {{{node_class!r}: Hello}}\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{folder}/__init__.py", body)
    return buffer.getvalue()


def catalog_document(base_url: str, archive: bytes, version: str = "1.2.0") -> dict[str, Any]:
    return {"format": "partyflow-catalog/1", "custom_nodes": [{
        "id": PACK_ID, "title": "Tidy Nodes", "author": "us", "reference": "https://example.org/tidy",
        "files": [f"{base_url}/tidy.zip"], "install_type": "archive", "version": version,
        "sha256": hashlib.sha256(archive).hexdigest(), "publisher": "us", "description": "tidy"}]}


def write_config(home: Path, channel_url: str, level: str) -> None:
    """The home's config.toml: one channel and a security level (PackManager reads it on every operation)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'security_level = "{level}"\n\n[manager]\n'
                                      f'channels = [{{name = "ours", url = "{channel_url}", priority = 1}}]\n')


@dataclass
class ManagerWorld:
    """A live server over a home whose catalog channel is `channel`."""

    server: LiveServer
    home: Path
    channel: Served

    def set_level(self, level: str) -> None:
        write_config(self.home, self.channel.url, level)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """The queue's completion event: true once its worker has drained everything and exited."""
        assert self.server.app[MANAGER].queue.wait_idle(timeout), "the manager queue did not finish"

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            async with self.server.session() as http, http.request(method, path, **kwargs) as resp:
                text = await resp.text()
                is_json = resp.content_type == "application/json"
                return resp.status, (await resp.json()) if is_json else text

        return run(go())

    def queue(self, kind: str, ui_id: str, **params: Any) -> tuple[int, Any]:
        return self.request("POST", "/api/v2/manager/queue/task",
                            json={"ui_id": ui_id, "client_id": "test", "kind": kind, "params": params})

    def run_tasks(self, *tasks: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
        """Queue each (kind, ui_id, params), start the worker, wait for it, and return the history."""
        for kind, ui_id, params in tasks:
            status, body = self.queue(kind, ui_id, **params)
            assert status == 200, body
        assert self.request("POST", "/v2/manager/queue/start")[0] in (200, 201)
        self.wait_idle()
        status, body = self.request("GET", "/v2/manager/queue/history")
        assert status == 200
        return body["history"]

    def installed(self) -> dict[str, Any]:
        status, body = self.request("GET", "/v2/customnode/installed")
        assert status == 200, body
        return body


def git_pack(root: Path, name: str) -> str:
    """A pack in a local git repository; returns its file:// URL (a git source, as the policy sees it)."""
    repo = make_pack(root, name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "first"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    return repo.as_uri()


def form_post(world: ManagerWorld, path: str, **kwargs: Any) -> int:
    """POST as a plain HTML form on another site could."""
    async def go() -> int:
        async with world.server.session() as http, http.post(path, **kwargs) as resp:
            return resp.status

    return run(go())
