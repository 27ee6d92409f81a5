"""An offline copy of the OSV vulnerability database for PyPI packages, kept in the home.

`import_osv(FILE)` reads an OSV export (the per-ecosystem `all.zip`, or a folder of `<ID>.json` records, or a single
record or list), validates every record and replaces the stored database in one step: a corrupt file is refused
with the reason and the previous database stays. The store is a plain SQLite file (`vulndb/osv.sqlite`) rebuilt
from scratch on each import, not one of the store's WAL databases: it is a replaceable cache, swapped atomically.
`VulnDb.lookup(name, version)` answers which records affect a release.
"""

from __future__ import annotations

import json
import os
import sqlite3
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from partyflow.config import Home
from partyflow.security.scanner.catalog import RULES
from partyflow.security.scanner.depnames import canonical
from partyflow.security.scanner.model import Finding, Severity

__all__ = ["ImportResult", "VulnDb", "VulnDbError", "import_osv", "vulndb_path"]

MAX_RECORD_BYTES = 16 * 1024 * 1024
MAX_TOTAL_BYTES = 4 * 1024 * 1024 * 1024
_SEVERITY = {"CRITICAL": Severity.CRITICAL, "HIGH": Severity.HIGH, "MODERATE": Severity.MEDIUM,
             "MEDIUM": Severity.MEDIUM, "LOW": Severity.LOW}
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE vulns (id TEXT PRIMARY KEY, summary TEXT, severity TEXT NOT NULL, aliases TEXT NOT NULL);
CREATE TABLE affected (package TEXT NOT NULL, vuln_id TEXT NOT NULL, ranges TEXT NOT NULL, versions TEXT NOT NULL);
CREATE INDEX affected_package ON affected (package);
"""


class VulnDbError(ValueError):
    """An OSV file that cannot be imported, or a stored database that cannot be read; says which and why."""


@dataclass(frozen=True)
class ImportResult:
    records: int
    pypi_records: int
    packages: int
    path: Path


def vulndb_path(home: Home) -> Path:
    return home.root / "vulndb" / "osv.sqlite"


def import_osv(source: Path, home: Home) -> ImportResult:
    """Validate every record of `source`, then replace the home's database atomically."""
    source = Path(source)
    if not source.exists():
        raise VulnDbError(f"{source}: no such file or folder")
    target = vulndb_path(home)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".osv-{os.getpid()}.sqlite")
    temp.unlink(missing_ok=True)
    total = pypi = 0
    packages: set[str] = set()
    conn = sqlite3.connect(temp)
    try:
        conn.executescript(_SCHEMA)
        for origin, record in _records(source):
            total += 1
            rows = _pypi_rows(origin, record)
            if not rows:
                continue
            pypi += 1
            conn.execute("INSERT OR REPLACE INTO vulns VALUES (?, ?, ?, ?)",
                         (record["id"], str(record.get("summary") or record.get("details") or "")[:500],
                          _severity(record).name, json.dumps(record.get("aliases") or [])))
            for package, ranges, versions in rows:
                packages.add(package)
                conn.execute("INSERT INTO affected VALUES (?, ?, ?, ?)",
                             (package, record["id"], json.dumps(ranges), json.dumps(versions)))
        if total == 0:
            raise VulnDbError(f"{source}: no OSV records found (expected .json records, or a zip of them)")
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("source", str(source)), ("imported_at", datetime.now(UTC).isoformat(timespec="seconds")),
            ("records", str(pypi))])
        conn.commit()
        conn.close()
        os.replace(temp, target)
    except BaseException:
        conn.close()
        temp.unlink(missing_ok=True)
        raise
    return ImportResult(total, pypi, len(packages), target)


def _records(source: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if source.is_dir():
        files = sorted(p for p in source.rglob("*.json") if p.is_file())
        for path in files:
            if path.stat().st_size > MAX_RECORD_BYTES:
                raise VulnDbError(f"{path}: record larger than {MAX_RECORD_BYTES // 2**20} MiB")
            yield from _parse(str(path), path.read_bytes())
        return
    if zipfile.is_zipfile(source):
        try:
            with zipfile.ZipFile(source) as archive:
                members = [i for i in archive.infolist() if i.filename.endswith(".json") and not i.is_dir()]
                if sum(i.file_size for i in members) > MAX_TOTAL_BYTES:
                    raise VulnDbError(f"{source}: unpacks to more than {MAX_TOTAL_BYTES // 2**30} GiB; refused")
                for info in members:
                    if info.file_size > MAX_RECORD_BYTES:
                        raise VulnDbError(f"{source}!{info.filename}: record larger than "
                                          f"{MAX_RECORD_BYTES // 2**20} MiB")
                    yield from _parse(f"{source}!{info.filename}", archive.read(info))
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise VulnDbError(f"{source}: damaged zip archive ({exc})") from exc
        return
    if source.suffix.lower() == ".zip":
        raise VulnDbError(f"{source}: not a zip archive (damaged or truncated download?)")
    yield from _parse(str(source), source.read_bytes())


def _parse(origin: str, data: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VulnDbError(f"{origin}: not valid JSON ({exc})") from None
    for record in parsed if isinstance(parsed, list) else [parsed]:
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
            raise VulnDbError(f"{origin}: not an OSV record (no 'id' string)")
        if not isinstance(record.get("affected", []), list):
            raise VulnDbError(f"{origin}: record {record['id']}: 'affected' must be a list")
        yield origin, record


def _pypi_rows(origin: str, record: dict[str, Any]) -> list[tuple[str, list[Any], list[str]]]:
    rows: list[tuple[str, list[Any], list[str]]] = []
    for entry in record.get("affected") or []:
        if not isinstance(entry, dict):
            raise VulnDbError(f"{origin}: record {record['id']}: an 'affected' entry is not an object")
        package = entry.get("package") or {}
        if not isinstance(package, dict) or package.get("ecosystem") != "PyPI" or not package.get("name"):
            continue
        ranges = [r for r in entry.get("ranges") or [] if isinstance(r, dict) and r.get("type") in
                  ("ECOSYSTEM", "SEMVER")]
        versions = [str(v) for v in entry.get("versions") or []]
        rows.append((canonical(str(package["name"])), ranges, versions))
    return rows


def _severity(record: dict[str, Any]) -> Severity:
    if str(record.get("id", "")).startswith("MAL-"):
        return Severity.CRITICAL
    specific = record.get("database_specific") or {}
    label = str(specific.get("severity", "")).upper() if isinstance(specific, dict) else ""
    return _SEVERITY.get(label, Severity.MEDIUM)


class VulnDb:
    """Read access to an imported database; `VulnDb.open(home)` is None when nothing was imported yet."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            self.meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise VulnDbError(f"{path}: unreadable vulnerability database ({exc}); run 'partyflow vulndb "
                              "import FILE' again") from None

    @classmethod
    def open(cls, home: Home) -> VulnDb | None:
        path = vulndb_path(home)
        return cls(path) if path.is_file() else None

    def close(self) -> None:
        self.conn.close()

    def lookup(self, name: str, version: str) -> list[Finding]:
        """PF205 findings (path and line left for the caller) for the records affecting name==version."""
        try:
            wanted = Version(version)
        except InvalidVersion:
            return []
        rows = self.conn.execute(
            "SELECT v.id, v.summary, v.severity, a.ranges, a.versions FROM affected a JOIN vulns v ON v.id = a.vuln_id"
            " WHERE a.package = ?", (canonical(name),)).fetchall()
        found: list[Finding] = []
        for vuln_id, summary, severity, ranges, versions in rows:
            if version in json.loads(versions) or any(_in_range(wanted, r) for r in json.loads(ranges)):
                found.append(Finding("", 0, "PF205", Severity[severity],
                                     f"{canonical(name)}=={version}: {vuln_id} {summary}".strip()[:300],
                                     RULES["PF205"].name, tool="osv"))
        return found


def _in_range(version: Version, spec: dict[str, Any]) -> bool:
    """OSV range semantics: walk the events in version order; introduced opens, fixed/last_affected close."""
    events: list[tuple[Version, str]] = []
    for event in spec.get("events") or []:
        for kind, raw in event.items():
            try:
                events.append((Version("0") if raw == "0" else Version(str(raw)), kind))
            except InvalidVersion:
                continue
    affected = False
    for at, kind in sorted(events, key=lambda e: (e[0], e[1] != "introduced")):
        if kind == "introduced" and version >= at:
            affected = True
        elif kind == "fixed" and version >= at:
            affected = False
        elif kind == "last_affected" and version > at:
            affected = False
        elif kind == "limit" and version >= at:
            affected = False
    return affected
