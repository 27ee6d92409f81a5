"""Scheduled pack health checks in a real running server: /metrics shows a gauge per enabled pack after a check,
and a pack that breaks between checks turns unhealthy at the next one."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.server.live import LiveServer, start_server

from partyflow import Engine
from partyflow.server import ServerConfig
from partyflow.server.config import ServerConfigError
from partyflow.server.health import HEALTH

from .conftest import BROKEN, FAST_SLOW, write_pack


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    home = tmp_path / "home"
    write_pack(home / "custom_nodes", "goodpack", FAST_SLOW)
    write_pack(home / "custom_nodes", "badpack", BROKEN)
    write_pack(home / "custom_nodes" / ".disabled", "offpack", BROKEN)  # disabled: not checked
    (home / "config.toml").write_text("[server]\nhealth_check_interval = 1\n", encoding="utf-8")
    engine = Engine(home=home, builtin_packs=())
    server = start_server(engine, ServerConfig(port=0, shutdown_grace_s=1.0))
    yield server
    server.stop()
    engine.close()


def metrics(server: LiveServer) -> str:
    async def get() -> str:
        async with server.session() as session, session.get("/metrics") as response:
            assert response.status == 200
            return await response.text()
    return asyncio.run(get())


def gauge(text: str, name: str, pack: str) -> float | None:
    match = re.search(rf'^{name}\{{pack="{pack}"\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_health_gauges_on_metrics_after_a_check(live: LiveServer) -> None:
    monitor = live.app[HEALTH]
    assert monitor.wait_for(1, timeout=60), "no health check finished"
    text = metrics(live)
    assert gauge(text, "partyflow_pack_healthy", "goodpack") == 1.0
    assert gauge(text, "partyflow_pack_healthy", "badpack") == 0.0
    assert gauge(text, "partyflow_pack_healthy", "offpack") is None
    stamp = gauge(text, "partyflow_pack_health_last_check_timestamp_seconds", "goodpack")
    assert stamp is not None and stamp > 1.7e9
    assert (gauge(text, "partyflow_pack_import_seconds", "goodpack") or 0) > 0
    assert re.search(r"^partyflow_health_check_last_run_timestamp_seconds \d", text, re.MULTILINE)

    # the schedule: the next check sees the pack that broke meanwhile
    (live.engine.home.custom_nodes / "goodpack" / "__init__.py").write_text(BROKEN, encoding="utf-8")
    assert monitor.wait_for(monitor.completed + 2, timeout=60)
    later = metrics(live)
    assert gauge(later, "partyflow_pack_healthy", "goodpack") == 0.0
    assert (gauge(later, "partyflow_pack_health_last_check_timestamp_seconds", "goodpack") or 0) > stamp


def test_health_interval_is_checked(tmp_path: Path) -> None:
    from partyflow.server import create_app

    engine = Engine(home=tmp_path / "home", builtin_packs=())
    try:
        for bad in (-1.0, 0.5):
            with pytest.raises(ServerConfigError, match="health_check_interval"):
                create_app(engine, ServerConfig(port=0, health_interval_s=bad))
        assert HEALTH not in create_app(engine, ServerConfig(port=0))  # off unless configured
    finally:
        engine.close()
