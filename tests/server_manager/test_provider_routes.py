"""The Providers page's routes: listing never shows keys, and only callers on this machine test or change them."""

from __future__ import annotations

from collections.abc import Callable

from tests.server_manager.world import ManagerWorld

from partyflow.config import Home
from partyflow.manager.audit import AuditLog


def test_local_changes_are_written_validated_and_audited(world: ManagerWorld, monkeypatch) -> None:
    monkeypatch.setenv("W11_TEST_KEY", "s3cret")
    status, body = world.request("PUT", "/api/partyflow/providers/mine", json={
        "type": "openai_compat", "base_url": "https://example.org/v1", "model": "m", "api_key_env": "W11_TEST_KEY"})
    assert status == 200 and body["key_set"] is True and "s3cret" not in str(body)
    listing = world.request("GET", "/api/partyflow/providers")[1]
    assert listing["can_change"] is True
    assert [p["name"] for p in listing["providers"]] == ["mine"]
    text = (world.home / "config.toml").read_text(encoding="utf-8")
    assert 'security_level = "normal"' in text and "[manager]" in text  # the rest of the file is kept
    # editing replaces the table in place
    assert world.request("PUT", "/api/partyflow/providers/mine", json={"type": "openai_compat", "model": "n"})[0] == 200
    text = (world.home / "config.toml").read_text(encoding="utf-8")
    assert text.count("[providers.mine]") == 1 and 'model = "n"' in text and "example.org" not in text

    for bad in ({"type": "nope"}, {"type": "openai_compat", "base_url": "ftp://x"},
                {"type": "openai_compat", "api_key": "sk-x"}, {"type": "openai_compat", "api_key_env": "sk-abc-123"}):
        status, body = world.request("PUT", "/api/partyflow/providers/mine", json=bad)
        assert status == 400, bad
    assert world.request("PUT", "/api/partyflow/providers/bad%20name", json={"type": "openai_compat"})[0] == 400
    assert world.request("PUT", "/api/partyflow/providers/x", data="a", headers={"Content-Type": "text/plain"})[0] == 415
    assert world.request("POST", "/api/partyflow/providers/unknown/test")[0] == 404

    world.set_level("strong")  # the policy: a change of provider is middle risk
    assert world.request("PUT", "/api/partyflow/providers/mine", json={"type": "openai_compat"})[0] == 403
    with AuditLog(Home(world.home)) as audit:
        results = [e.result for e in audit.entries() if e.action == "provider.set"]
    assert results[:2] == ["ok", "ok"] and results[-1] == "refused" and "error" in results


def test_a_remote_listener_may_only_look(world_factory: Callable[..., ManagerWorld]) -> None:
    world = world_factory(host="0.0.0.0", token="t0ken-for-remote")
    world.server.headers["Authorization"] = "Bearer t0ken-for-remote"
    assert world.request("GET", "/api/partyflow/providers")[1]["can_change"] is False
    assert world.request("PUT", "/api/partyflow/providers/mine", json={"type": "openai_compat"})[0] == 403
    assert world.request("POST", "/api/partyflow/providers/mine/test")[0] == 403
