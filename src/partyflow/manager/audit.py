"""A tamper-evident log of manager actions in the home's state.sqlite.

Each record's hash covers its own fields and the previous record's hash, so changing or deleting any record breaks
every later link and `verify` names the first record that no longer fits. Appends read the last hash and insert in
one IMMEDIATE transaction, so two processes writing at once still form one chain. The removal of the newest records
leaves no broken link; it shows because ids come from SQLite's AUTOINCREMENT counter, which never goes back, so
`verify` compares the last id with it.

Someone who can write the database can also reset that counter, or edit a record and recompute every later hash.
Against both, every append signs the new end of the chain (`audit_seal`: last id and hash, Ed25519, with a key kept
in `keys/audit/`, not in the database) in the same transaction, and `verify` checks the stored signed head against
the chain. An append to a log that no longer matches its signed head records that in every later head, so a later
signature never launders the tampering. `anchor()` exports the signed head for safekeeping elsewhere;
`verify(anchor=...)` then also catches a thief of the key, for the records up to the anchor. docs/security.md lists
exactly what is and is not caught.
"""

from __future__ import annotations

import csv
import dataclasses
import getpass
import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from partyflow.config import Home
from partyflow.manager.audit_seal import Anchor, AuditError, AuditKey, SignedHead, anchor_document
from partyflow.store.sqlite import StoreConnection, migrate, open_database, transaction

__all__ = ["AuditEntry", "AuditError", "AuditLog", "AuditVerification", "current_actor"]

COMPONENT = "audit"
GENESIS = "0" * 64
# the signed end of the chain (see audit_seal); one row
_HEAD_TABLE = """
    CREATE TABLE IF NOT EXISTS audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        payload TEXT NOT NULL,
        signature TEXT NOT NULL
    );
    """
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
    _HEAD_TABLE,
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
    signed: bool = False   # the head was checked against its signature (False: an empty or older, unsigned log)
    key_id: str | None = None  # the audit key that signed it
    anchor: str | None = None  # with verify(anchor=...): what the anchor confirmed


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

    def __init__(self, home: Home | Path, *, keys_dir: Path | None = None) -> None:
        db = home.state_db if isinstance(home, Home) else Path(home)
        self.key = AuditKey(keys_dir or (home.root if isinstance(home, Home) else db.parent) / "keys")
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
            self._require_table()
            row = self.conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
            prev = row[1] if row else GENESIS
            (next_id,) = self.conn.execute(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'), 0) + 1").fetchone()
            broken = self._broken_before_append(row, next_id)
            digest = _chain_hash(prev, next_id, at, who, action, pack, version, content_hash, source, result, error,
                                 detail_text)
            self.conn.execute(
                f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                (next_id, at, who, action, pack, version, content_hash, source, result, error, detail_text, prev,
                 digest))
            self._store_head(SignedHead(next_id, digest, broken))
        return AuditEntry(next_id, at, who, action, pack, version, content_hash, source, result, error, detail_text,
                          prev, digest)

    def entries(self, *, pack: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Records oldest first (with `limit`, the newest `limit` of them)."""
        where, params = ("WHERE pack = ?", [pack]) if pack else ("", [])
        query = f"SELECT {', '.join(_COLUMNS)} FROM audit_log {where} ORDER BY id DESC"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with transaction(self.conn, write=False):
            self._require_table()
            rows = self.conn.execute(query, params).fetchall()
        return [AuditEntry(*row) for row in reversed(rows)]

    # ---- the signed head ---------------------------------------------------------------------------------------

    def _table_exists(self) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'").fetchone() is not None

    def _require_table(self) -> None:
        if not self._table_exists():
            raise AuditError(f"the audit_log table is missing from {self._db_file()}: the audit log was deleted",
                             hint="restore state.sqlite from a backup; 'partyflow audit verify' shows what the "
                                  "signed head still vouches for")

    def _db_file(self) -> str:
        from partyflow.store.sqlite import database_file

        return database_file(self.conn) or "the database"

    def _read_head(self) -> tuple[SignedHead, str] | None | str:
        """The stored head and its signature; None when there is none; a reason string when it is malformed."""
        if self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_head'"
                             ).fetchone() is None:
            return "the audit_head table is missing (it was dropped)"
        row = self.conn.execute("SELECT payload, signature FROM audit_head WHERE id = 1").fetchone()
        if row is None:
            return None
        try:
            return SignedHead.from_payload(json.loads(row[0])), str(row[1])
        except (ValueError, TypeError):
            return "the stored signed head is malformed (it was edited)"

    def _store_head(self, head: SignedHead) -> None:
        self.conn.execute(_HEAD_TABLE)  # dropped? the head about to be written says so (`broken`)
        self.conn.execute("INSERT INTO audit_head (id, payload, signature) VALUES (1, ?, ?) ON CONFLICT (id) DO "
                          "UPDATE SET payload = excluded.payload, signature = excluded.signature",
                          (json.dumps(head.payload(), sort_keys=True), self.key.sign(head)))

    def _broken_before_append(self, last: tuple[int, str] | None, next_id: int) -> dict[str, Any] | None:
        """Whether the log still matched its signed head just before this append (carrying an earlier verdict)."""
        had_key = self.key.exists()
        stored = self._read_head()

        def broken(reason: str) -> dict[str, Any]:
            return {"at_id": next_id, "reason": reason}

        if stored is None:
            if last is None or not had_key:
                return None  # a new log, or one written before heads were signed: this append anchors it
            return broken("the signed head was missing")
        if isinstance(stored, str):
            return broken(stored)
        head, signature = stored
        if not had_key or not self.key.verify(head, signature):
            return broken("the stored head did not match its signature (it was edited, or the key was replaced)")
        if head.broken:
            return head.broken
        if last is None or (last[0], last[1]) != (head.last_id, head.head):
            where = f"record {last[0]}" if last else "an empty table"
            return broken(f"the log ended at {where}, but its signed head named record {head.last_id} (records "
                          "were removed or rewritten)")
        return None

    def _check_head(self, records: int, last_id: int, last_hash: str) -> AuditVerification:
        """The chain itself is intact; does it end where the signed head says?"""
        stored = self._read_head()
        if stored is None:
            if records and self.key.exists():
                return AuditVerification(False, records, None, "the signed head is missing (it was deleted)",
                                         last_hash)
            return AuditVerification(True, records, head=last_hash)  # empty, or written before heads were signed
        if isinstance(stored, str):
            return AuditVerification(False, records, None, stored, last_hash)
        head, signature = stored
        try:
            key_id = self.key.key_id()
            valid = self.key.verify(head, signature)
        except AuditError as exc:
            return AuditVerification(False, records, None, exc.message, last_hash)
        if not valid:
            return AuditVerification(False, records, None, "the signed head does not match its signature (it was "
                                     "edited, or the audit key was replaced)", last_hash, key_id=key_id)
        if head.broken:
            at = head.broken.get("at_id")
            return AuditVerification(False, records, at if isinstance(at, int) else None,
                                     f"when record {at} was written, {head.broken.get('reason')}", last_hash,
                                     signed=True, key_id=key_id)
        if head.last_id > last_id:
            return AuditVerification(False, records, last_id + 1,
                                     f"the newest records {last_id + 1}..{head.last_id} are missing (the signed "
                                     f"head names record {head.last_id})", last_hash, signed=True, key_id=key_id)
        if head.last_id < last_id:
            return AuditVerification(False, records, head.last_id + 1,
                                     f"records {head.last_id + 1}..{last_id} were added without a signed head (not "
                                     "written by partyflow)", last_hash, signed=True, key_id=key_id)
        if head.head != last_hash:
            return AuditVerification(False, records, last_id, "the chain does not end with the hash its signed head "
                                     "names (records were rewritten and the chain recomputed)", last_hash,
                                     signed=True, key_id=key_id)
        return AuditVerification(True, records, head=last_hash, signed=True, key_id=key_id)

    def anchor(self) -> dict[str, Any]:
        """The current signed head as an anchor document to keep outside this machine (`audit verify --anchor`).
        Refuses a log that does not verify; signs the head first for a log written before heads were signed."""
        outcome = self.verify()
        if not outcome.ok:
            raise AuditError(f"the audit log does not verify (record {outcome.first_bad_id}: {outcome.reason}); "
                             "refusing to anchor it", user_error=True)
        with transaction(self.conn):
            row = self.conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
            stored = self._read_head()
            if not isinstance(stored, tuple):
                self._store_head(SignedHead(row[0] if row else 0, row[1] if row else GENESIS))
                stored = self._read_head()
            assert isinstance(stored, tuple)
        head, signature = stored
        return anchor_document(self.key, head, signature, outcome.records)

    def _check_anchor(self, anchor: Anchor, outcome: AuditVerification) -> AuditVerification:
        """Does this log still hold, unchanged, every record up to the one `anchor` names?"""
        def failed(first: int | None, reason: str) -> AuditVerification:
            return AuditVerification(False, outcome.records, first, reason, outcome.head, outcome.signed,
                                     outcome.key_id)

        if self.key.exists() and self.key.key_id() != anchor.key_id:
            return failed(None, f"the anchor was signed by audit key {anchor.key_id}, this home's key is "
                                f"{self.key.key_id()} (the key was replaced)")
        if not self.key.exists():
            return failed(None, f"the audit key is missing; the anchor names key {anchor.key_id}")
        head = anchor.head
        if head.last_id == 0:
            return dataclasses.replace(outcome, anchor=f"anchor of an empty log ({anchor.created})")
        row = self.conn.execute("SELECT hash FROM audit_log WHERE id = ?", (head.last_id,)).fetchone()
        if row is None:
            return failed(head.last_id, f"record {head.last_id}, which the anchor of {anchor.created} names, is "
                                        "missing (the log was cut back)")
        if row[0] != head.head:
            return failed(head.last_id, f"record {head.last_id} no longer has the hash the anchor of "
                                        f"{anchor.created} holds (the log was rewritten)")
        return dataclasses.replace(outcome, anchor=f"records 1..{head.last_id} match the anchor of {anchor.created}")

    def verify(self, anchor: Path | None = None) -> AuditVerification:
        """Walk the chain, then check it ends where its signed head says (and, given an anchor file, that every
        record up to the anchor's is unchanged). The first record that does not fit is named."""
        from partyflow.manager.audit_seal import read_anchor

        held = read_anchor(anchor) if anchor is not None else None
        with transaction(self.conn, write=False):
            outcome = self._verify_locked()
            if held is not None and outcome.ok:
                outcome = self._check_anchor(held, outcome)
        return outcome

    def _verify_locked(self, *, check_head: bool = True) -> AuditVerification:
        prev, expected_id, count = GENESIS, None, 0
        if not self._table_exists():
            stored = self._read_head()
            named = (f"; its signed head names record {stored[0].last_id} as the newest"
                     if isinstance(stored, tuple) else "")
            return AuditVerification(False, 0, None, f"the audit_log table is missing (it was dropped){named}")
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
        if not check_head:
            return AuditVerification(True, count, head=prev)
        return self._check_head(count, last, prev)

    def reseal(self) -> AuditVerification:
        """Sign the current end of the chain with this home's key: for a log that arrived from elsewhere (a backup
        restored onto this machine, whose audit key stays behind). The chain itself is checked first; a broken
        chain, or a head that already says it was broken, stays marked broken in the new head."""
        with transaction(self.conn):
            if not self._table_exists():
                raise AuditError(f"the audit_log table is missing from {self._db_file()}")
            outcome = self._verify_locked(check_head=False)
            row = self.conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
            if row is None:
                self.conn.execute("DELETE FROM audit_head")
                return outcome
            stored = self._read_head()
            broken = stored[0].broken if isinstance(stored, tuple) else None  # pessimistic: kept unchecked
            if not outcome.ok and broken is None:
                broken = {"at_id": outcome.first_bad_id, "reason": f"the log was resealed while {outcome.reason}"}
            self._store_head(SignedHead(row[0], row[1], broken))
        return self.verify()

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
