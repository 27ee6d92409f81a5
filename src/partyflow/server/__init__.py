"""The ComfyUI-compatible HTTP/WebSocket server: `create_app(engine, ServerConfig(...))`."""

from __future__ import annotations

from partyflow.server.app import create_app
from partyflow.server.config import ServerConfig, ServerConfigError
from partyflow.server.context import CONTEXT, ENGINE, ServerContext

__all__ = ["CONTEXT", "ENGINE", "ServerConfig", "ServerConfigError", "ServerContext", "create_app"]
