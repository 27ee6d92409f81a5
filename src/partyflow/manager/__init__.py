"""The manager: node packs on disk, where they came from, and a log of every change.

Import from here: `PackManager` (install, uninstall, enable, disable, update, list), `SourceSpec` (where a pack
comes from; catalog code returns one), `AuditLog`, and `ManagerError`. Submodules load lazily so that
`import partyflow.manager` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from partyflow.manager.audit import AuditLog, AuditVerification
    from partyflow.manager.errors import ManagerError, UnknownPackError
    from partyflow.manager.packs import InstalledPack, OperationResult, PackManager
    from partyflow.manager.sources import SourceSpec

__all__ = ["AuditLog", "AuditVerification", "InstalledPack", "ManagerError", "OperationResult", "PackManager",
           "SourceSpec", "UnknownPackError"]

_HOMES = {
    "AuditLog": "audit", "AuditVerification": "audit", "ManagerError": "errors", "UnknownPackError": "errors",
    "InstalledPack": "packs", "OperationResult": "packs", "PackManager": "packs", "SourceSpec": "sources",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"partyflow.manager.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'partyflow.manager' has no attribute {name!r}")
