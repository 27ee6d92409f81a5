"""A tamper-evident log of manager actions in the home's state.sqlite.

Each record's hash covers its own fields and the previous record's hash, so changing or deleting any record breaks
every later link and `verify` names the first record that no longer fits. Appends read the last hash and insert in
one IMMEDIATE transaction, so two processes writing at once still form one chain. The removal of the newest records
leaves no broken link; it shows because ids come from SQLite's AUTOINCREMENT counter, which never goes back, so
`verify` compares the last id with it. Someone who also rewrites that counter can still shorten the log unseen:
keep an exported copy, or compare `verify().head` with one kept elsewhere, against that.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from partyflow.config import Home
from partyflow.store.sqlite import StoreConnection, migrate, open_database, transaction

__all__ = ["AuditEntry", "AuditLog", "AuditVerification", "current_actor"]

COMPONENT = "audit"
GENESIS = "0" * 64
MIGRATIONS = [
    """
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        pack TEXT,
        version TEXT,
        content_hash TEXT,
        source TEXT,
        result TEXT NOT NULL,
        error TEXT,
        details TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_log_pack ON audit_log (pack);
    """,
]
_COLUMNS = ("id", "at", "actor", "action", "pack", "version", "content_hash", "source", "result", "error",
            "details", "prev_hash", "hash")


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    pack: str | None
    version: str | None
    content_hash: str | None
    source: str | None
    result: str            # ok | failed | refused | recovered
    error: str | None
    details: str | None    # JSON text with anything else worth keeping
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        return _chain_hash(self.prev_hash, self.id, self.at, self.actor, self.action, self.pack, self.version,
                           self.content_hash, self.source, self.result, self.error, self.details)


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    records: int
    first_bad_id: int | None = None
    reason: str | None = None
    head: str = GENESIS    # the last record's hash; keep it elsewhere to detect removal of the newest records


def current_actor() -> str:
    """The OS user running the manager (the uid when the name cannot be looked up)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _chain_hash(prev_hash: str, *values: Any) -> str:
    payload = json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{payload}".encode()).hexdigest()


class AuditLog:
    """The audit table of one home's state.sqlite; open, use, close (or use as a context manager)."""

    def __init__(self, home: Home | Path) -> None:
        db = home.state_db if isinstance(home, Home) else Path(home)
        self.conn: StoreConnection = open_database(db)
        migrate(self.conn, COMPONENT, MIGRATIONS)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def record(self, action: str, *, result: str = "ok", pack: str | None = None, version: str | None = None,
               content_hash: str | None = None, source: str | None = None, error: str | None = None,
               details: dict[str, Any] | None = None, actor: str | None = None) -> AuditEntry:
        """Append one record to the chain."""
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        who = actor or current_actor()
        detail_text = json.dumps(details, sort_keys=True, default=str) if details else None
        with transaction(self.conn):
            row = self.conn.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
            prev = row[0] if row else GENESIS
            (next_id,) = self.conn.execute(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'), 0) + 1").fetchone()
            digest = _chain_hash(prev, next_id, at, who, action, pack, version, content_hash, source, result, error,
                                 detail_text)
            self.conn.execute(
                f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                (next_id, at, who, action, pack, version, content_hash, source, result, error, detail_text, prev,
                 digest))
        return AuditEntry(next_id, at, who, action, pack, version, content_hash, source, result, error, detail_text,
                          prev, digest)

    def entries(self, *, pack: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Records oldest first (with `limit`, the newest `limit` of them)."""
        where, params = ("WHERE pack = ?", [pack]) if pack else ("", [])
        query = f"SELECT {', '.join(_COLUMNS)} FROM audit_log {where} ORDER BY id DESC"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with transaction(self.conn, write=False):
            rows = self.conn.execute(query, params).fetchall()
        return [AuditEntry(*row) for row in reversed(rows)]

    def verify(self) -> AuditVerification:
        """Walk the chain; the first record whose links or fields do not match is named."""
        prev, expected_id, count = GENESIS, None, 0
        with transaction(self.conn, write=False):
            cursor = self.conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM audit_log ORDER BY id")
            for row in cursor:
                entry = AuditEntry(*row)
                count += 1
                if expected_id is not None and entry.id != expected_id:
                    return AuditVerification(False, count, entry.id,
                                             f"records {expected_id}..{entry.id - 1} are missing", prev)
                if entry.prev_hash != prev:
                    return AuditVerification(False, count, entry.id,
                                             "its link to the previous record does not match (a record before it "
                                             "was changed or removed, or this link was edited)", prev)
                if entry.expected_hash() != entry.hash:
                    return AuditVerification(False, count, entry.id, "its fields were changed after it was written",
                                             prev)
                prev, expected_id = entry.hash, entry.id + 1
            row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'").fetchone()
        issued = int(row[0]) if row and row[0] is not None else 0
        last = (expected_id or 1) - 1
        if issued > last:
            return AuditVerification(False, count, last + 1,
                                     f"the newest records {last + 1}..{issued} are missing (the log was cut short)",
                                     prev)
        return AuditVerification(True, count, head=prev)

    def export(self, out: TextIO, fmt: Literal["json", "csv"] = "json") -> int:
        """Write every record (with its hashes, so the copy can be verified too); returns how many."""
        entries = self.entries()
        if fmt == "json":
            json.dump([asdict(e) for e in entries], out, indent=2, ensure_ascii=False)
            out.write("\n")
        elif fmt == "csv":
            writer = csv.writer(out)
            writer.writerow([f.name for f in fields(AuditEntry)])
            for entry in entries:
                writer.writerow(["" if v is None else v for v in asdict(entry).values()])
        else:
            raise ValueError(f"unknown export format {fmt!r}: use json or csv")
        return len(entries)
