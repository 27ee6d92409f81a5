"""The audit log: a hash chain in state.sqlite that names the first tampered record; exports."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading

from partyflow.config import Home
from partyflow.manager.audit import GENESIS, AuditLog


def fill(home: Home, count: int = 5) -> None:
    with AuditLog(home) as log:
        for i in range(count):
            log.record("install", pack=f"pack{i}", version=f"1.{i}", content_hash=f"sha256:{i:064x}",
                       source=f"/src/pack{i}", result="ok" if i % 2 == 0 else "failed",
                       error=None if i % 2 == 0 else "boom", details={"i": i})


def test_chain_verifies_and_links(home: Home) -> None:
    fill(home)
    with AuditLog(home) as log:
        entries = log.entries()
        outcome = log.verify()
    assert [e.id for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
    assert outcome.ok and outcome.records == 5 and outcome.head == entries[-1].hash
    assert entries[1].actor and entries[1].error == "boom"


def test_edited_field_is_named(home: Home) -> None:
    fill(home)
    with sqlite3.connect(home.state_db) as db:
        db.execute("UPDATE audit_log SET result = 'ok', error = NULL WHERE id = 4")
    with AuditLog(home) as log:
        outcome = log.verify()
    assert not outcome.ok and outcome.first_bad_id == 4 and "fields were changed" in outcome.reason


def test_rewritten_hash_breaks_the_next_link(home: Home) -> None:
    """An attacker who recomputes the edited record's own hash is caught by the next record's link."""
    fill(home)
    with AuditLog(home) as log:
        entry = log.entries()[2]
    forged = entry.__class__(**{**entry.__dict__, "pack": "innocent"})
    with sqlite3.connect(home.state_db) as db:
        db.execute("UPDATE audit_log SET pack = 'innocent', hash = ? WHERE id = 3", (forged.expected_hash(),))
    with AuditLog(home) as log:
        outcome = log.verify()
    assert outcome.first_bad_id == 4 and "link to the previous record" in outcome.reason


def test_deleted_records_are_detected(home: Home) -> None:
    fill(home)
    with sqlite3.connect(home.state_db) as db:
        db.execute("DELETE FROM audit_log WHERE id = 2")
    with AuditLog(home) as log:
        outcome = log.verify()
    assert outcome.first_bad_id == 3 and "records 2..2 are missing" in outcome.reason
    # removing the newest records breaks no link, but ids come from a counter that never goes back
    other = Home(home.root / "other")
    fill(other, 3)
    with sqlite3.connect(other.state_db) as db:
        db.execute("DELETE FROM audit_log WHERE id >= 2")
    with AuditLog(other) as log:
        cut = log.verify()
        assert not cut.ok and cut.first_bad_id == 2 and "newest records 2..3 are missing" in cut.reason
        log.record("uninstall", pack="x")  # and once the next record is appended, its id shows the gap too
        assert log.verify().first_bad_id == 4
    emptied = Home(home.root / "emptied")
    fill(emptied, 2)
    with sqlite3.connect(emptied.state_db) as db:
        db.execute("DELETE FROM audit_log")
    with AuditLog(emptied) as log:
        assert log.verify().first_bad_id == 1


def test_concurrent_writers_form_one_chain(home: Home) -> None:
    def write(n: int) -> None:
        with AuditLog(home) as log:
            for i in range(10):
                log.record("enable", pack=f"t{n}-{i}")

    AuditLog(home).close()  # create the schema once
    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with AuditLog(home) as log:
        outcome = log.verify()
    assert outcome.ok and outcome.records == 40


def test_export_json_and_csv(home: Home) -> None:
    fill(home, 3)
    with AuditLog(home) as log:
        as_json, as_csv = io.StringIO(), io.StringIO()
        assert log.export(as_json, "json") == 3
        assert log.export(as_csv, "csv") == 3
    records = json.loads(as_json.getvalue())
    assert [r["pack"] for r in records] == ["pack0", "pack1", "pack2"] and records[1]["error"] == "boom"
    rows = list(csv.DictReader(io.StringIO(as_csv.getvalue())))
    assert [r["hash"] for r in rows] == [r["hash"] for r in records]
    assert rows[0]["error"] == "" and json.loads(rows[0]["details"]) == {"i": 0}
