"""The SQLite store: connection settings, transactions across threads, migrations and unusable files."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from partyflow.store.sqlite import StoreError, migrate, open_database, schema_version, transaction


@pytest.fixture
def conn(tmp_path: Path):
    connection = open_database(tmp_path / "state.sqlite")
    yield connection
    connection.close()


def pragma(conn: sqlite3.Connection, name: str):
    return conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_open_database_configures_wal_durability_and_foreign_keys(conn):
    assert pragma(conn, "journal_mode") == "wal"
    assert pragma(conn, "synchronous") == 2  # FULL
    assert pragma(conn, "foreign_keys") == 1
    assert pragma(conn, "busy_timeout") >= 1000


def test_open_database_creates_missing_directories_and_accepts_normal_sync(tmp_path):
    conn = open_database(tmp_path / "home" / "nested" / "state.sqlite", synchronous="NORMAL")
    try:
        assert pragma(conn, "synchronous") == 1
    finally:
        conn.close()
    assert (tmp_path / "home" / "nested" / "state.sqlite").is_file()


def test_a_file_that_is_not_a_database_gives_store_error_naming_it(tmp_path):
    bogus = tmp_path / "state.sqlite"
    bogus.write_bytes(b"this is certainly not an SQLite file\n" * 200)
    with pytest.raises(StoreError) as caught:
        open_database(bogus)
    assert caught.value.path == str(bogus)
    assert str(bogus) in str(caught.value)
    assert "move it aside" in str(caught.value)


def test_a_directory_in_place_of_the_file_gives_store_error(tmp_path):
    with pytest.raises(StoreError, match="cannot open database"):
        open_database(tmp_path)


def test_transaction_commits_and_rolls_back(conn):
    conn.execute("CREATE TABLE t (v INTEGER)")
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(RuntimeError), transaction(conn):
        conn.execute("INSERT INTO t VALUES (2)")
        raise RuntimeError("boom")
    assert conn.execute("SELECT v FROM t").fetchall() == [(1,)]
    assert not conn.in_transaction


def test_transaction_is_immediate_so_other_writers_wait(tmp_path, conn):
    conn.execute("CREATE TABLE t (v INTEGER)")
    other = sqlite3.connect(tmp_path / "state.sqlite", timeout=0, isolation_level=None)
    try:
        with transaction(conn):
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        with transaction(conn, write=False):  # a read transaction leaves the write lock free
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
    finally:
        other.close()


def test_nested_transaction_undoes_only_the_inner_block(conn):
    conn.execute("CREATE TABLE t (v INTEGER)")
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(KeyError), transaction(conn):
            conn.execute("INSERT INTO t VALUES (2)")
            raise KeyError("inner")
        with transaction(conn):
            conn.execute("INSERT INTO t VALUES (3)")
    assert conn.execute("SELECT v FROM t ORDER BY v").fetchall() == [(1,), (3,)]


def test_one_connection_is_safe_from_many_threads(conn):
    conn.execute("CREATE TABLE counter (n INTEGER)")
    conn.execute("INSERT INTO counter VALUES (0)")
    failures: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(50):
                with transaction(conn):
                    (n,) = conn.execute("SELECT n FROM counter").fetchone()
                    conn.execute("UPDATE counter SET n = ?", (n + 1,))
        except BaseException as exc:  # surfaced below; a thread's exception would otherwise vanish
            failures.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert conn.execute("SELECT n FROM counter").fetchone() == (300,)


def test_migrate_applies_each_step_once_and_records_the_version(conn):
    calls: list[int] = []
    steps = [
        "CREATE TABLE a (x TEXT); CREATE TABLE b (y TEXT);",
        lambda c: calls.append(1) or c.execute("INSERT INTO a VALUES ('from step 2')"),
    ]
    assert migrate(conn, "demo", steps) == 2
    assert migrate(conn, "demo", steps) == 2
    assert calls == [1]
    assert schema_version(conn, "demo") == 2
    assert conn.execute("SELECT x FROM a").fetchall() == [("from step 2",)]


def test_migrate_applies_only_the_new_steps_after_an_upgrade(tmp_path):
    path = tmp_path / "state.sqlite"
    first = ["CREATE TABLE a (x TEXT)"]
    conn = open_database(path)
    migrate(conn, "demo", first)
    conn.close()

    conn = open_database(path)
    try:
        assert migrate(conn, "demo", [*first, "ALTER TABLE a ADD COLUMN y TEXT"]) == 2
        assert [row[1] for row in conn.execute("PRAGMA table_info(a)")] == ["x", "y"]
    finally:
        conn.close()


def test_migrate_is_atomic_when_a_step_fails(conn):
    steps = ["CREATE TABLE a (x TEXT)", "INSERT INTO nowhere VALUES (1)", "CREATE TABLE c (z TEXT)"]
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        migrate(conn, "demo", steps)
    assert schema_version(conn, "demo") == 0
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'a'").fetchone() is None


def test_migrate_refuses_a_newer_schema_than_the_code_knows(conn):
    migrate(conn, "demo", ["CREATE TABLE a (x TEXT)", "CREATE TABLE b (y TEXT)"])
    with pytest.raises(StoreError) as caught:
        migrate(conn, "demo", ["CREATE TABLE a (x TEXT)"])
    message = str(caught.value)
    assert "state.sqlite" in message and "'demo'" in message and "version 2" in message
    assert "upgrade partyflow" in message


def test_components_are_versioned_independently(conn):
    migrate(conn, "queue", ["CREATE TABLE q (x TEXT)"])
    migrate(conn, "audit", ["CREATE TABLE au (x TEXT)", "CREATE TABLE au2 (x TEXT)"])
    assert dict(conn.execute("SELECT component, version FROM schema_versions")) == {"queue": 1, "audit": 2}


def test_script_steps_split_on_statement_boundaries_only(conn):
    script = """
        CREATE TABLE log (msg TEXT);  -- a comment; with a semicolon
        CREATE TABLE t (v TEXT);
        CREATE TRIGGER t_logged AFTER INSERT ON t BEGIN
            INSERT INTO log VALUES ('inserted; really');
            INSERT INTO log VALUES (new.v);
        END;
    """
    migrate(conn, "demo", [script])
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES ('x')")
    assert conn.execute("SELECT msg FROM log").fetchall() == [("inserted; really",), ("x",)]
