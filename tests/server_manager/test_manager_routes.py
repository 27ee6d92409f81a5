"""The manager dialog's /v2 routes on a real server: installs only from configured catalogs at `normal`, what the
risk table allows at other levels, the task queue, snapshots, and refusal of form posts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from tests.server.live import receive_until, run
from tests.server_manager.world import NODE_CLASS, PACK_ID, ManagerWorld, form_post, git_pack, make_pack

from partyflow.manager.audit import AuditLog


def _audit(home: Path) -> list[tuple[str, str, str | None]]:
    with AuditLog(home / "state.sqlite") as log:
        return [(e.action, e.result, e.pack) for e in log.entries()]


def test_install_from_a_catalog_id_through_the_queue(world: ManagerWorld) -> None:
    async def scenario() -> list[dict]:
        async with world.server.session() as http, http.ws_connect(world.server.ws_url("dialog")) as ws:
            resp = await http.post("/api/v2/manager/queue/task", json={
                "ui_id": "t1", "client_id": "dialog", "kind": "install",
                "params": {"id": PACK_ID, "version": "1.2.0", "selected_version": "latest", "mode": "cache",
                           "channel": "default"}})
            assert resp.status == 200, await resp.text()
            assert (await http.get("/v2/manager/queue/status")).status == 200
            assert (await http.post("/api/v2/manager/queue/start")).status == 200
            return await receive_until(ws, lambda m: m["type"] == "cm-queue-status", timeout=30)

    messages = run(scenario())
    kinds = [m["type"] for m in messages if m["type"].startswith("cm-")]
    assert kinds == ["cm-task-started", "cm-task-completed", "cm-queue-status"]
    world.wait_idle()
    done = next(m["data"] for m in messages if m["type"] == "cm-task-completed")
    assert done["status"] == {"status_str": "success", "completed": True, "messages": []}, done
    assert done["state"]["installed_packs"][PACK_ID]["enabled"] is True and done["state"]["pending_queue"] == []
    assert world.installed()[PACK_ID] == {"ver": "1.2.0", "cnr_id": PACK_ID, "aux_id": None, "enabled": True}
    assert (world.home / "custom_nodes" / PACK_ID / "__init__.py").is_file()
    status, body = world.request("GET", "/v2/manager/queue/status")
    assert body == {"total_count": 0, "done_count": 1, "in_progress_count": 0, "pending_count": 0,
                    "is_processing": False}
    history = world.request("GET", "/v2/manager/queue/history", params={"ui_id": "t1"})[1]["history"]
    assert history["kind"] == "install" and history["client_id"] == "dialog"
    with AuditLog(world.home / "state.sqlite") as log:
        entry = next(e for e in log.entries() if e.action == "install")
    assert (entry.result, entry.pack, entry.version) == ("ok", PACK_ID, "1.2.0")
    assert "via http from 127.0.0.1" in entry.actor


@pytest.mark.parametrize("source", ["path", "archive", "url", "git"])
def test_non_catalog_sources_are_refused_at_normal(world: ManagerWorld, tmp_path: Path, source: str) -> None:
    pack = make_pack(tmp_path / "src", "localpack")
    targets = {"path": str(pack), "archive": str(tmp_path / "local.zip"), "url": "https://example.org/x.zip",
               "git": "https://github.com/someone/evil-nodes.git"}
    status, body = world.queue("install", "bad", id=targets[source], selected_version="latest")
    assert status == 403, body
    assert body["error"]["type"] == "forbidden"
    assert "not allowed at security level 'normal'" in body["error"]["message"]
    assert body["error"]["details"] == "use a configured catalog"
    assert world.request("GET", "/v2/manager/queue/status")[1]["pending_count"] == 0
    assert ("install", "refused", targets[source]) in _audit(world.home)
    assert "localpack" not in world.installed()


def test_unknown_catalog_id_is_not_found_with_suggestions(world: ManagerWorld) -> None:
    status, body = world.queue("install", "typo", id="tidy-node")
    assert status == 404 and "did you mean: tidy-nodes" in body["error"]["details"]


def test_weak_on_loopback_allows_what_the_risk_table_says(world: ManagerWorld, tmp_path: Path) -> None:
    world.set_level("weak")
    folder = make_pack(tmp_path / "src", "folderpack")
    repo = git_pack(tmp_path / "repos", "gitpack")
    history = world.run_tasks(("install", "p", {"id": str(folder)}), ("install", "g", {"id": repo}))
    assert {k: v["status"]["status_str"] for k, v in history.items()} == {"p": "success", "g": "success"}, history
    installed = world.installed()
    assert installed["folderpack"]["enabled"] and installed["gitpack"]["aux_id"].endswith("repos/gitpack")
    world.set_level("strong")  # middle risk (even a catalog install) is refused at strong
    status, body = world.queue("install", "s", id=PACK_ID)
    assert status == 403 and "'strong'" in body["error"]["message"]


def test_a_remote_listener_gets_the_remote_column(world_factory: Callable[..., ManagerWorld],
                                                  tmp_path: Path) -> None:
    world = world_factory(host="0.0.0.0", token="manager-test-token")
    world.server.headers["Authorization"] = "Bearer manager-test-token"
    world.set_level("weak")
    repo = git_pack(tmp_path / "repos", "gitpack")
    status, body = world.queue("install", "g", id=repo)  # high+: loopback only
    assert status == 403 and "remote server client" in body["error"]["message"]
    status, _ = world.queue("install", "p", id=str(make_pack(tmp_path / "src", "folderpack")))  # high: weak
    assert status == 200
    assert world.request("POST", "/v2/manager/queue/reset")[1] == {"dropped": 1}
    status, body = world.request("POST", "/v2/manager/db_mode", json={"value": "remote"})
    assert status == 403 and "from this machine" in body["error"]["message"]
    assert world.request("GET", "/v2/manager/db_mode") == (200, "cache")


def test_disable_enable_uninstall_round_trip(world: ManagerWorld) -> None:
    history = world.run_tasks(("install", "i", {"id": PACK_ID}), ("disable", "d", {"node_name": PACK_ID}))
    assert [v["status"]["status_str"] for v in history.values()] == ["success", "success"]
    assert world.installed()[PACK_ID]["enabled"] is False
    assert (world.home / "custom_nodes" / ".disabled" / PACK_ID).is_dir()
    history = world.run_tasks(("enable", "e", {"cnr_id": PACK_ID}), ("update", "up", {"node_name": PACK_ID}))
    assert world.installed()[PACK_ID]["enabled"] is True
    assert (history["up"]["status"]["status_str"], history["up"]["result"]) == ("skip", f"{PACK_ID} is up to date")
    status, body = world.queue("fix", "fx", node_name=PACK_ID, node_ver="1.2.0")  # fix reinstalls with pip
    assert status == 403 and "pip sources" in body["error"]["message"]
    history = world.run_tasks(("uninstall", "u", {"node_name": PACK_ID}))
    assert history["u"]["status"]["status_str"] == "success"
    assert PACK_ID not in world.installed()
    assert [a for a in _audit(world.home) if a[2] == PACK_ID] == [
        ("install", "ok", PACK_ID), ("disable", "ok", PACK_ID), ("enable", "ok", PACK_ID),
        ("update", "unchanged", PACK_ID), ("fix", "refused", PACK_ID), ("uninstall", "ok", PACK_ID)]
    history = world.run_tasks(("disable", "again", {"node_name": PACK_ID}))
    assert history["again"]["status"]["status_str"] == "error"
    assert "no installed pack named" in history["again"]["result"]


def test_snapshots_save_list_and_gated_removal(world: ManagerWorld) -> None:
    status, saved = world.request("POST", "/v2/snapshot/save")
    assert status == 200, saved
    status, listing = world.request("GET", "/v2/snapshot/getlist")
    assert listing == {"items": [saved["name"]]}
    current = world.request("GET", "/v2/snapshot/get_current")[1]
    assert {p["name"] for p in current["packs"]} == {"gatepack", "brokenpack"}
    assert world.request("POST", "/v2/snapshot/remove", params={"target": "../config"})[0] == 404
    world.set_level("strong")
    status, body = world.request("POST", "/v2/snapshot/remove", params={"target": saved["name"]})
    assert status == 403 and "removing a snapshot" in body["error"]["message"]
    status, body = world.request("POST", "/v2/snapshot/restore", params={"target": saved["name"]})
    assert status == 403
    world.set_level("normal")
    assert world.request("POST", "/v2/snapshot/remove", params={"target": saved["name"]})[0] == 200
    assert world.request("GET", "/v2/snapshot/getlist")[1] == {"items": []}
    assert [a[:2] for a in _audit(world.home)] == [("save-snapshot", "ok"), ("remove-snapshot", "refused"),
                                                   ("restore-snapshot", "refused"), ("remove-snapshot", "ok")]


def test_form_posts_are_refused(world: ManagerWorld) -> None:
    task = {"ui_id": "f", "client_id": "x", "kind": "install", "params": {"id": PACK_ID}}
    form = aiohttp.FormData()
    form.add_field("kind", "install")
    form.add_field("file", b"x", filename="x.bin")
    assert form_post(world, "/v2/manager/queue/task", data={"kind": "install", "id": PACK_ID}) == 415
    assert form_post(world, "/v2/manager/queue/task", data=form) == 415
    assert form_post(world, "/v2/manager/queue/task", data=json.dumps(task),
                     headers={"Content-Type": "text/plain"}) == 415
    assert form_post(world, "/v2/manager/queue/start", headers={"Content-Type": "text/plain"}) == 415
    assert form_post(world, "/v2/snapshot/save", data=b"", headers={"Content-Type": "text/plain"}) == 415
    assert world.request("GET", "/v2/manager/queue/status")[1]["pending_count"] == 0
    assert world.request("POST", "/v2/manager/queue/start")[0] in (200, 201)  # no body at all is fine


def test_views_the_dialog_reads(world: ManagerWorld) -> None:
    mappings = world.request("GET", "/v2/customnode/getmappings", params={"mode": "cache"})[1]
    assert mappings["https://example.org/tidy"] == [[NODE_CLASS], {"title_aux": "Tidy Nodes"}]
    assert "Gate" in mappings["gatepack"][0]  # an unmanaged pack is keyed by its folder name
    assert world.request("GET", "/v2/customnode/fetch_updates") == (200, {"updates": []})
    status, info = world.request("POST", "/v2/customnode/import_fail_info", json={"cnr_id": "brokenpack"})
    assert status == 200 and "nobody has" in info["msg"] and info["name"] == "brokenpack"
    assert world.request("POST", "/v2/customnode/import_fail_info", json={"cnr_id": "gatepack"})[0] == 404
    bulk = world.request("POST", "/v2/customnode/import_fail_info_bulk",
                         json={"cnr_ids": ["brokenpack", "gatepack"]})[1]
    assert bulk["gatepack"] is None and "nobody has" in bulk["brokenpack"]["error"]
    channels = world.request("GET", "/api/v2/manager/channel_url_list")[1]
    assert channels == {"selected": "ours", "list": [f"ours::{world.channel.url}"]}
    assert world.request("POST", "/v2/manager/channel_url_list", json={"value": "other"})[0] == 409
    assert world.request("GET", "/v2/manager/version")[1].startswith("partyflow ")
    status, body = world.queue("update-comfyui", "x", node_name="comfyui")
    assert status == 400 and body["error"]["type"] == "invalid_task"


def test_the_serve_commands_security_level_wins_over_the_config(world_factory: Callable[..., ManagerWorld]) -> None:
    world = world_factory(security_level="strong")  # config.toml says normal: a catalog install would be allowed
    status, body = world.queue("install", "s", id=PACK_ID)
    assert status == 403 and "'strong'" in body["error"]["message"]
