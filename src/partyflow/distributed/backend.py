"""The backend interface the server's dispatcher talks to, the in-process `LocalBackend`, and `make_backend`.

A backend runs one claimed queue item and streams its events through `emit` (on the caller's event loop); it
never writes history: the dispatcher records a prompt once, whatever the backend had to retry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from partyflow.distributed.settings import BackendSettings

if TYPE_CHECKING:
    from partyflow.engine.engine import Engine, RunResult
    from partyflow.engine.events import EventSink
    from partyflow.engine.queue import QueueItem


class ExecutionBackend(Protocol):
    """Where queued prompts run. `max_in_flight` bounds how many the dispatcher claims at once."""

    name: str
    max_in_flight: int

    async def start(self) -> None:
        """Connect or start workers; raise BackendUnavailable with a message a user can act on."""

    async def run(self, item: QueueItem, emit: EventSink) -> RunResult:
        """Run the prompt to its end (success, error or interrupted) and return what it produced."""

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Ask the prompt (or every prompt) to stop; True if something was running."""

    async def status(self) -> dict[str, Any]:
        """Workers, running prompts and loaded models, as JSON-ready data (`partyflow ray status`)."""

    async def close(self) -> None:
        """Stop workers this backend started; leave a cluster it joined running."""


class BackendUnavailable(RuntimeError):
    """The backend cannot run prompts now (cluster unreachable, extra missing); says what to do about it."""


class LocalBackend:
    """Prompts run in the server's own engine: the behaviour of a partyflow without any backend setting."""

    name = "local"
    max_in_flight = 1

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._running: set[str] = set()

    async def start(self) -> None:
        return None

    async def run(self, item: QueueItem, emit: EventSink) -> RunResult:
        self._running.add(item.prompt_id)
        try:
            return await self.engine.execute_item(item, [emit])
        finally:
            self._running.discard(item.prompt_id)

    def interrupt(self, prompt_id: str | None = None) -> bool:
        return self.engine.interrupt(prompt_id)

    async def status(self) -> dict[str, Any]:
        models = [{"name": m.name, "bytes": m.bytes} for m in self.engine.loaded_models()]
        return {"backend": "local", "workers": [{"id": "local", "alive": True, "running": sorted(self._running),
                                                 "models": models}]}

    async def close(self) -> None:
        return None


def make_backend(engine: Engine, settings: BackendSettings | None = None) -> ExecutionBackend:
    """The backend the home's config asks for; the Ray one is imported only when chosen."""
    settings = settings or BackendSettings.from_raw(engine.settings.raw)
    if settings.backend == "ray" and settings.driver == "process":  # a joined cluster: survive losing it
        from partyflow.distributed.driver import DriverProcessBackend

        return DriverProcessBackend(engine, settings)
    if settings.backend == "ray":
        from partyflow.distributed.ray_backend import RayBackend

        return RayBackend(engine, settings)
    return LocalBackend(engine)
