"""The offline vulnerability database, by its short name: `lookup(home, name, version)` for reports, plus the
scanner's import and query API re-exported (the code lives in `scanner/vulndb.py`)."""

from __future__ import annotations

from typing import Any

from partyflow.config import Home
from partyflow.security.scanner.vulndb import ImportResult, VulnDb, VulnDbError, import_osv, vulndb_path

__all__ = ["ImportResult", "VulnDb", "VulnDbError", "import_osv", "lookup", "vulndb_path"]


def lookup(home: Home, name: str, version: str) -> list[dict[str, Any]]:
    """Records affecting name==version, as plain dicts. Without an imported database this raises VulnDbError, so a
    caller never mistakes "not checked" for "none known"."""
    db = VulnDb.open(home)
    if db is None:
        raise VulnDbError("no vulnerability database imported; run 'partyflow vulndb import FILE'")
    try:
        return [{"id": f.message.split(": ", 1)[1].split(" ", 1)[0], "package": name, "version": version,
                 "severity": f.severity.label, "summary": f.message} for f in db.lookup(name, version)]
    finally:
        db.close()
