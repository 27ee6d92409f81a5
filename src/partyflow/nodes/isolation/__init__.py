"""Isolated packs: a pack with its own virtual environment whose nodes run in a worker process of that environment.

`IsolatedPacks` (the engine's loader hook), `make_proxy_class` (host-side stand-ins), `WorkerClient` (one worker),
and `create_environment` / `venv_dir` (the venv). The worker itself is `partyflow.nodes.isolation.worker`, run
with the venv's python. Submodules are imported on use so that importing this package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from partyflow.nodes.isolation.client import RemoteNodeError, WorkerClient, WorkerCrashed, WorkerError
    from partyflow.nodes.isolation.environment import create_environment, remove_environment, venv_dir
    from partyflow.nodes.isolation.loading import IsolatedPacks, isolated_pack_names
    from partyflow.nodes.isolation.proxy import make_proxy_class
    from partyflow.nodes.isolation.wire import ValueTransferError

__all__ = ["IsolatedPacks", "RemoteNodeError", "ValueTransferError", "WorkerClient", "WorkerCrashed",
           "WorkerError", "create_environment", "isolated_pack_names", "make_proxy_class", "remove_environment",
           "venv_dir"]

_HOMES = {"RemoteNodeError": "client", "WorkerClient": "client", "WorkerCrashed": "client", "WorkerError": "client",
          "create_environment": "environment", "remove_environment": "environment", "venv_dir": "environment",
          "IsolatedPacks": "loading", "isolated_pack_names": "loading", "make_proxy_class": "proxy",
          "ValueTransferError": "wire"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
