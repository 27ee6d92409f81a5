"""The ComfyUI-compatible HTTP/WebSocket server: `create_app(engine, ServerConfig(...))`.

Names are imported on first use, so the CLI can read the server's settings without importing aiohttp.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_app": "partyflow.server.app",
    "ServerConfig": "partyflow.server.config",
    "ServerConfigError": "partyflow.server.config",
    "CONTEXT": "partyflow.server.context",
    "ENGINE": "partyflow.server.context",
    "ServerContext": "partyflow.server.context",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'partyflow.server' has no attribute {name!r}")
