"""The audit chain's signed head and external anchors (issue 10, part 4): someone who can write state.sqlite can
cut the newest records (resetting SQLite's id counter too) or rewrite a record and recompute every later hash;
both once passed `audit verify`. Each attack below is caught, and docs/security.md says what still is not."""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from tests.manager.helpers import cli

from partyflow.config import Home
from partyflow.manager.audit import GENESIS, AuditError, AuditLog


def fill(home: Home, count: int = 5) -> None:
    with AuditLog(home) as log:
        for i in range(count):
            log.record("install", pack=f"pack{i}", version=f"1.{i}", details={"i": i})


def cut_newest(home: Home, keep: int) -> None:
    """Delete the newest records and set SQLite's counter back, so ids alone show no gap."""
    with sqlite3.connect(home.state_db) as db:
        db.execute("DELETE FROM audit_log WHERE id > ?", (keep,))
        db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'audit_log'", (keep,))


def rewrite(home: Home, record_id: int, **changes: str) -> None:
    """Edit one record and recompute its hash and every later link: a chain that fits again."""
    with AuditLog(home) as log:
        entries = log.entries()
    prev = GENESIS
    with sqlite3.connect(home.state_db) as db:
        for entry in entries:
            changed = replace(entry, prev_hash=prev, **(changes if entry.id == record_id else {}))
            digest = changed.expected_hash()
            db.execute("UPDATE audit_log SET pack = ?, result = ?, prev_hash = ?, hash = ? WHERE id = ?",
                       (changed.pack, changed.result, prev, digest, entry.id))
            prev = digest


def verify(home: Home, anchor: Path | None = None):  # noqa: ANN201 - AuditVerification
    with AuditLog(home) as log:
        return log.verify(anchor)


def test_every_append_signs_the_head(home: Home) -> None:
    fill(home)
    outcome = verify(home)
    assert outcome.ok and outcome.signed and outcome.records == 5 and outcome.key_id
    key = home.root / "keys" / "audit" / "ed25519.pem"
    assert key.is_file() and key.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(home.state_db) as db:
        payload = json.loads(db.execute("SELECT payload FROM audit_head").fetchone()[0])
    assert payload["last_id"] == 5 and payload["head"] == outcome.head and payload["broken"] is None


def test_cutting_the_newest_records_and_the_counter_is_caught(home: Home) -> None:
    fill(home)
    cut_newest(home, 3)
    outcome = verify(home)
    assert not outcome.ok and outcome.first_bad_id == 4
    assert "newest records 4..5 are missing" in outcome.reason and "signed head names record 5" in outcome.reason
    # appending afterwards re-signs the end of the chain, but the head keeps saying the log was tampered with
    fill(home, 2)
    later = verify(home)
    assert not later.ok and "when record 4 was written" in later.reason and "named record 5" in later.reason


def test_a_rewritten_and_rechained_log_is_caught(home: Home) -> None:
    fill(home)
    rewrite(home, 2, pack="innocent", result="ok")
    outcome = verify(home)
    assert not outcome.ok and "rewritten and the chain recomputed" in outcome.reason
    fill(home, 1)  # no laundering by the next legitimate append
    assert "when record 6 was written" in verify(home).reason


def test_edited_or_deleted_head_and_missing_key_are_caught(home: Home) -> None:
    fill(home)
    with sqlite3.connect(home.state_db) as db:
        db.execute("UPDATE audit_head SET payload = replace(payload, '\"last_id\": 5', '\"last_id\": 3')")
    cut_newest(home, 3)
    assert "does not match its signature" in verify(home).reason
    other = Home(home.root / "other")
    fill(other)
    with sqlite3.connect(other.state_db) as db:
        db.execute("DELETE FROM audit_head")
    assert "signed head is missing" in verify(other).reason
    with sqlite3.connect(other.state_db) as db:
        db.execute("DROP TABLE audit_head")
    assert "audit_head table is missing" in verify(other).reason
    fill(other, 1)  # the next append writes a new head, which says what it found
    assert "when record 6 was written, the audit_head table is missing" in verify(other).reason
    third = Home(home.root / "third")
    fill(third)
    shutil.rmtree(third.root / "keys" / "audit")
    assert "audit key" in verify(third).reason and not verify(third).ok


def test_a_dropped_table_is_a_clear_error(home: Home) -> None:
    fill(home)
    with sqlite3.connect(home.state_db) as db:
        db.execute("DROP TABLE audit_log")
    outcome = verify(home)
    assert not outcome.ok and "audit_log table is missing" in outcome.reason and "record 5" in outcome.reason
    with AuditLog(home) as log, pytest.raises(AuditError, match="audit_log table is missing"):
        log.record("install", pack="x")
    done = cli("audit", "verify", home=home)
    assert done.returncode == 1 and "audit_log table is missing" in done.stderr and "Traceback" not in done.stderr
    done = cli("audit", "show", home=home)
    assert done.returncode == 1 and "audit_log table is missing" in done.stderr and "Traceback" not in done.stderr


def test_an_older_unsigned_log_is_anchored_by_its_next_append(home: Home) -> None:
    """Homes written before heads were signed: verify passes (unsigned), and the next append signs the head."""
    fill(home, 3)
    with sqlite3.connect(home.state_db) as db:
        db.execute("DELETE FROM audit_head")
    shutil.rmtree(home.root / "keys" / "audit")
    outcome = verify(home)
    assert outcome.ok and not outcome.signed
    fill(home, 1)
    assert verify(home).ok and verify(home).signed
    legacy = Home(home.root / "legacy")  # anchoring such a log signs its head first
    fill(legacy, 2)
    with sqlite3.connect(legacy.state_db) as db:
        db.execute("DELETE FROM audit_head")
    shutil.rmtree(legacy.root / "keys" / "audit")
    with AuditLog(legacy) as log:
        document = log.anchor()
        assert document["signed_head"]["last_id"] == 2 and log.verify().signed


def test_a_head_taken_from_another_home_is_caught(home: Home) -> None:
    fill(home)
    other = Home(home.root / "other")
    fill(other)
    with sqlite3.connect(other.state_db) as db:
        payload, signature = db.execute("SELECT payload, signature FROM audit_head").fetchone()
    with sqlite3.connect(home.state_db) as db:
        db.execute("UPDATE audit_head SET payload = ?, signature = ?", (payload, signature))
    assert "does not match its signature" in verify(home).reason


def test_an_anchor_file_catches_even_a_thief_of_the_key(home: Home, tmp_path: Path) -> None:
    fill(home)
    done = cli("audit", "anchor", "--out", str(tmp_path / "anchor.json"), "--yes", "--json", home=home)
    assert done.returncode == 0, done.stderr
    anchor = tmp_path / "anchor.json"
    result = json.loads(done.stdout)
    assert result["ok"] is True and result["anchor"] == str(anchor) and result["records"] == result["last_id"] == 5
    assert result["head"] == json.loads(anchor.read_text())["signed_head"]["head"]
    assert verify(home, anchor).ok and "records 1..5 match the anchor" in verify(home, anchor).anchor
    fill(home, 2)  # later records are fine
    assert verify(home, anchor).ok
    # with the key, an attacker can rewrite and re-sign: only the anchor still sees it
    rewrite(home, 2, pack="innocent")
    with AuditLog(home) as log:
        log.reseal()  # what an attacker holding the audit key can do
        assert log.verify().ok
    outcome = verify(home, anchor)
    assert not outcome.ok and outcome.first_bad_id == 5 and "no longer has the hash the anchor" in outcome.reason
    done = cli("audit", "verify", "--anchor", str(anchor), home=home)
    assert done.returncode == 1 and "anchor" in done.stderr
    # cut back below the anchor, re-signed with the key
    cut = Home(tmp_path / "cut")
    fill(cut)
    with AuditLog(cut) as log:
        (tmp_path / "cut.json").write_text(json.dumps(log.anchor()), encoding="utf-8")
    cut_newest(cut, 2)
    with AuditLog(cut) as log:
        log.conn.execute("DELETE FROM audit_head")
        log.reseal()
        assert log.verify().ok
    assert "record 5, which the anchor" in verify(cut, tmp_path / "cut.json").reason
    # a replaced key is named
    shutil.rmtree(cut.root / "keys" / "audit")
    with AuditLog(cut) as log:
        log.reseal()
    assert "the key was replaced" in verify(cut, tmp_path / "cut.json").reason


def test_a_tampered_or_malformed_anchor_file_is_refused(home: Home, tmp_path: Path) -> None:
    fill(home)
    with AuditLog(home) as log:
        document = log.anchor()
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({**document, "signed_head": {**document["signed_head"], "last_id": 2}}),
                      encoding="utf-8")
    with pytest.raises(AuditError, match="does not match its own signature"):
        verify(home, forged)
    (tmp_path / "junk.json").write_text("{", encoding="utf-8")
    done = cli("audit", "verify", "--anchor", str(tmp_path / "junk.json"), home=home)
    assert done.returncode == 2 and "not an audit anchor" in done.stderr and "Traceback" not in done.stderr


def test_anchor_refuses_a_log_that_does_not_verify(home: Home, tmp_path: Path) -> None:
    fill(home)
    cut_newest(home, 3)
    done = cli("audit", "anchor", "--out", str(tmp_path / "a.json"), home=home)
    assert done.returncode == 2 and "refusing to anchor" in done.stderr and not (tmp_path / "a.json").exists()
    done = cli("audit", "anchor", "--out", str(tmp_path / "a.json"), "--json", home=home)
    error = json.loads(done.stdout)
    assert done.returncode == 2 and error["ok"] is False and "refusing to anchor" in error["error"]
    assert not (tmp_path / "a.json").exists()
