"""Scheduled pack health checks for `serve`, published on /metrics.

Every `interval` seconds (`[server] health_check_interval` in config.toml, or `serve --health-interval`; off by
default), every enabled pack is imported in the OS sandbox exactly as `nodes doctor` does (`manager.doctor`),
and the result becomes Prometheus gauges in the server's own registry:

    partyflow_pack_healthy{pack="..."}                               1 imported, 0 failed
    partyflow_pack_health_last_check_timestamp_seconds{pack="..."}   when that pack was last checked
    partyflow_pack_import_seconds{pack="..."}                        its import time in the check
    partyflow_health_check_last_run_timestamp_seconds                when the last check finished
    partyflow_health_check_failures_total                            checks that could not run (no sandbox...)

A pack that was removed disappears from the gauges at the next check. The checks run on a daemon thread of their
own: a slow pack import never blocks the event loop, and shutdown never waits for a check in progress (its
sandboxed children die with the process).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Gauge

from partyflow.config import Home

logger = logging.getLogger("partyflow.server.health")

MIN_INTERVAL = 1.0
Check = Callable[[Home], Sequence[Any]]


def _diagnose(home: Home) -> Sequence[Any]:
    from partyflow.manager.doctor import diagnose

    return diagnose(home)


class HealthMonitor:
    """Runs the checks on a schedule and keeps the gauges; `wait_for(n)` blocks until n checks have finished."""

    def __init__(self, home: Home, registry: Any, interval: float, *, check: Check = _diagnose) -> None:
        self.home = home
        self.interval = max(float(interval), MIN_INTERVAL)
        self._check = check
        self._stop = threading.Event()
        self._done = threading.Condition()
        self.completed = 0
        self._thread: threading.Thread | None = None
        self._known: set[str] = set()
        self.healthy = Gauge("partyflow_pack_healthy", "1 if the pack imported in the last sandboxed health check, "
                             "0 if it failed", ["pack"], registry=registry)
        self.last_check = Gauge("partyflow_pack_health_last_check_timestamp_seconds", "When the pack was last "
                                "checked (Unix time)", ["pack"], registry=registry)
        self.import_seconds = Gauge("partyflow_pack_import_seconds", "The pack's import time in the last health "
                                    "check", ["pack"], registry=registry)
        self.last_run = Gauge("partyflow_health_check_last_run_timestamp_seconds", "When the last pack health check "
                              "finished (Unix time)", registry=registry)
        self.failures = Counter("partyflow_health_check_failures", "Health checks that could not run (for example "
                                "no OS sandbox)", registry=registry)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="partyflow-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until `count` checks have finished (True) or `timeout` passed (False)."""
        with self._done:
            return self._done.wait_for(lambda: self.completed >= count, timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.run_once()
            self._stop.wait(max(self.interval - (time.monotonic() - started), 0.0))

    def run_once(self) -> None:
        """One check of every enabled pack; never raises (a check that cannot run is logged and counted)."""
        try:
            results = list(self._check(self.home))
        except Exception as exc:  # noqa: BLE001 - the server keeps serving; the failure is on /metrics and logged
            self.failures.inc()
            logger.warning("pack health check could not run: %s", exc)
        else:
            self._publish(results)
        with self._done:
            self.completed += 1
            self._done.notify_all()

    def _publish(self, results: Sequence[Any]) -> None:
        now = time.time()
        seen = set()
        for result in results:
            seen.add(result.name)
            self.healthy.labels(result.name).set(1 if result.ok else 0)
            self.last_check.labels(result.name).set(now)
            if result.seconds is not None:
                self.import_seconds.labels(result.name).set(result.seconds)
            if not result.ok:
                logger.warning("pack %s is unhealthy: %s", result.name, result.error)
        for gone in self._known - seen:
            for gauge in (self.healthy, self.last_check, self.import_seconds):
                try:
                    gauge.remove(gone)
                except KeyError:
                    pass
        self._known = seen
        self.last_run.set(now)
        logger.info("pack health check: %d of %d enabled packs healthy", sum(1 for r in results if r.ok),
                    len(results))


HEALTH: web.AppKey[HealthMonitor] = web.AppKey("partyflow_health", HealthMonitor)


def attach_health_checks(app: web.Application, home: Home, registry: Any, interval: float) -> HealthMonitor:
    """Run a HealthMonitor while `app` runs (kept in `app[HEALTH]`); started with the app, stopped with it."""
    monitor = HealthMonitor(home, registry, interval)
    app[HEALTH] = monitor

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        monitor.start()
        yield
        monitor.stop()

    app.cleanup_ctx.append(lifecycle)
    return monitor


def interval_from(raw_config: Any, override: float | None) -> float:
    """The configured interval in seconds (0: off): the override, else `[server] health_check_interval`."""
    value: Any = override
    if value is None:
        server = raw_config.get("server", {}) if isinstance(raw_config, dict) else {}
        value = server.get("health_check_interval", 0) if isinstance(server, dict) else 0
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"health_check_interval must be a number of seconds, got {value!r}") from None
    if seconds < 0 or (0 < seconds < MIN_INTERVAL):
        raise ValueError(f"health_check_interval must be 0 (off) or at least {MIN_INTERVAL:g} seconds, "
                         f"got {seconds:g}")
    return seconds
