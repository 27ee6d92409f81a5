"""`ServerContext`: everything a request handler needs, in one object stored on the app (no module globals)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from partyflow.access import AccessStore
from partyflow.engine.engine import Engine
from partyflow.server.config import ServerConfig
from partyflow.server.hub import ClientHub
from partyflow.server.metrics import Metrics
from partyflow.server.users import UserStore
from partyflow.server.worker import QueueWorker


@dataclass
class ServerContext:
    engine: Engine
    config: ServerConfig
    metrics: Metrics
    hub: ClientHub
    users: UserStore
    worker: QueueWorker
    access: AccessStore  # users, tokens and sessions (server/access.py enforces them)
    accepting: bool = True  # False once shutdown began: POST /prompt answers 503
    extra: dict[str, object] = field(default_factory=dict)  # room for extensions' own state


CONTEXT: web.AppKey[ServerContext] = web.AppKey("partyflow_context", ServerContext)
ENGINE: web.AppKey[Engine] = web.AppKey("partyflow_engine", Engine)


def context(request: web.Request) -> ServerContext:
    return request.app[CONTEXT]
