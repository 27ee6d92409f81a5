"""The manager dialog's catalog in the Comfy Registry's shapes, from the home's channels, and the switches that turn
the editor's built-in manager on (issue 11, item 3)."""

from __future__ import annotations

from tests.server_manager.world import NODE_CLASS, PACK_ID, ManagerWorld

REGISTRY = "/api/partyflow/registry"


def test_list_search_and_lookup_in_registry_shapes(world: ManagerWorld) -> None:
    status, listing = world.request("GET", f"{REGISTRY}/nodes?limit=10&page=1")
    assert status == 200
    assert {k: listing[k] for k in ("total", "page", "limit", "totalPages")} == {
        "total": 1, "page": 1, "limit": 10, "totalPages": 1}
    (pack,) = listing["nodes"]
    assert pack["id"] == PACK_ID and pack["name"] == "Tidy Nodes" and pack["repository"] == "https://example.org/tidy"
    assert pack["latest_version"]["version"] == "1.2.0" and pack["publisher"]["name"] == "us"
    assert pack["comfy_nodes"] == [NODE_CLASS]

    assert world.request("GET", f"{REGISTRY}/nodes?node_id={PACK_ID}")[1]["total"] == 1
    assert world.request("GET", f"{REGISTRY}/nodes?node_id=other")[1]["nodes"] == []
    assert world.request("GET", f"{REGISTRY}/nodes/search?search=tidy")[1]["nodes"][0]["id"] == PACK_ID
    assert world.request("GET", f"{REGISTRY}/nodes/search?search=unrelated")[1]["nodes"] == []
    assert world.request("GET", f"{REGISTRY}/nodes/search?comfy_node_search=tidyhe")[1]["total"] == 1
    assert world.request("GET", f"{REGISTRY}/nodes/{PACK_ID}")[1]["id"] == PACK_ID
    assert world.request("GET", f"{REGISTRY}/comfy-nodes/{NODE_CLASS}/node")[1]["id"] == PACK_ID
    assert world.request("GET", f"{REGISTRY}/comfy-nodes/NoSuchNode/node")[0] == 404
    assert [v["version"] for v in world.request("GET", f"{REGISTRY}/nodes/{PACK_ID}/versions")[1]] == ["1.2.0"]
    assert world.request("GET", f"{REGISTRY}/nodes/nope")[0] == 404
    assert world.request("GET", f"{REGISTRY}/nodes?limit=x")[0] == 400

    status, bulk = world.request("POST", f"{REGISTRY}/bulk/nodes/versions", json={"node_versions": [
        {"node_id": PACK_ID, "version": "1.2.0"}, {"node_id": "nope", "version": "1"}]})
    assert status == 200
    assert [a["status"] for a in bulk["node_versions"]] == ["success", "not_found"]
    assert bulk["node_versions"][0]["node_version"]["version"] == "1.2.0"

    # anything else the dialog might ask the registry for is a quick JSON 404, never a hang
    status, body = world.request("POST", f"{REGISTRY}/algolia-unavailable", json={})
    assert status == 404 and body["error"]["type"] == "not_found"


def test_the_editor_is_told_the_manager_is_here(world: ManagerWorld) -> None:
    features = world.request("GET", "/api/features")[1]
    assert features["extension"]["manager"] == {"supports_v4": True, "supports_csrf_post": True}
    assert features["partyflow"]["registry"] is True
    assert "--enable-manager" in world.request("GET", "/api/system_stats")[1]["system"]["argv"]
    extensions = world.request("GET", "/api/extensions")[1]
    assert "/extensions/partyflow-server/partyflow_registry.js" in extensions
    status, script = world.request("GET", "/extensions/partyflow-server/partyflow_registry.js")
    assert status == 200 and "api.comfy.org" in script


def test_apply_changes_restarts_through_the_policy(world: ManagerWorld) -> None:
    from partyflow.server.context import CONTEXT
    from partyflow.server.runner import RESTART_HOOK

    status, body = world.request("POST", "/api/v2/manager/reboot")
    assert status == 409 and "restart partyflow" in body["error"]["details"]  # no `partyflow serve` around it

    restarts: list[bool] = []
    world.server.app[CONTEXT].extra[RESTART_HOOK] = lambda: restarts.append(True)
    world.set_level("strong")
    assert world.request("POST", "/api/v2/manager/reboot")[0] == 403
    assert restarts == []
    world.set_level("normal")
    assert world.request("POST", "/api/v2/manager/reboot", data="x", headers={"Content-Type": "text/plain"})[0] == 415
    status, body = world.request("POST", "/api/v2/manager/reboot")
    assert status == 200 and body == {"restarting": True}
    world.request("GET", "/api/v2/manager/version")  # a later request: the hook ran right after the answer
    assert restarts == [True]
