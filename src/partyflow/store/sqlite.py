"""The one small SQLite store behind the queue, history, memory and audit.

Choices, and why:

* **WAL journal**: readers never block the writer and a killed process leaves a consistent database; the next
  open replays or discards the log.
* **synchronous=FULL by default**: in WAL mode NORMAL already survives a killed *process*, but the last commits can
  vanish on power loss or an OS crash. The design promises that an accepted prompt, a history entry or an audit
  record is never lost, and these writes are few (a handful per prompt, not per token), so one fsync per commit is
  cheap. A component with bulk writes of reproducible data may pass ``synchronous="NORMAL"``. The prompt queue,
  whose writes come in bursts from many clients, goes through :mod:`partyflow.store.group_commit` instead, which
  commits with NORMAL and syncs the WAL itself once per group of accepted prompts: accepted prompts keep the promise
  in full; a history entry that a power cut catches before the next sync is lost with its prompt still queued, so
  the prompt runs again rather than vanishing (see that module).
* **One connection per database, guarded by a re-entrant lock** (``StoreConnection.lock``). SQLite admits one
  writer at a time anyway and our transactions are short, so a lock costs nothing measurable; per-thread connections
  would leak as worker threads come and go and would make ``close()`` unreliable. The connection is opened with
  ``check_same_thread=False``; every use must go through :func:`transaction`, which holds the lock, so statements of
  two threads never interleave inside one transaction.
* **Explicit transactions**: the connection runs in autocommit mode (``isolation_level=None``) and
  :func:`transaction` issues ``BEGIN IMMEDIATE``, taking the write lock up front so a transaction never fails half
  way with ``SQLITE_BUSY`` when another process writes too.
* **Migrations in code**, per component, recorded in ``schema_versions``; see :func:`migrate`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Literal

__all__ = [
    "MigrationStep",
    "StoreConnection",
    "StoreError",
    "database_file",
    "migrate",
    "open_database",
    "schema_version",
    "transaction",
]

logger = logging.getLogger(__name__)

MigrationStep = str | Callable[[sqlite3.Connection], None]
"""A migration step: an SQL script (any number of statements) or a function given the connection."""

BUSY_TIMEOUT_MS = 10_000
"""How long a write waits for another process's write lock before failing (the CLI and a server may share a file)."""


class StoreError(Exception):
    """A database the store cannot use; says which file and what the user can do about it."""

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint
        text = message if path is None else f"{path}: {message}"
        if hint:
            text = f"{text} ({hint})"
        super().__init__(text)


class StoreConnection(sqlite3.Connection):
    """A connection that carries the lock serialising its use across threads."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.RLock()


def open_database(path: Path, *, synchronous: Literal["FULL", "NORMAL"] = "FULL") -> StoreConnection:
    """Open (creating if needed) the SQLite file at `path`, configured as the module docstring explains.

    Raises StoreError when the file cannot be opened or is not an SQLite database.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
            factory=StoreConnection,
        )
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open database: {exc}", path=path, hint="check the path and its permissions") from exc
    try:
        _configure(conn, synchronous)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(
            f"not a usable SQLite database ({exc})",
            path=path,
            hint="the file is corrupt or belongs to something else: move it aside and partyflow will create a new one",
        ) from exc
    return conn


def _configure(conn: sqlite3.Connection, synchronous: str) -> None:
    # journal_mode is the first statement that reads the file header, so a non-database fails here.
    (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
    if mode.lower() != "wal":
        logger.warning("SQLite refused WAL mode (journal_mode=%s); crash safety relies on rollback journals", mode)
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")


@contextmanager
def transaction(conn: sqlite3.Connection, *, write: bool = True) -> Iterator[sqlite3.Connection]:
    """Run the block as one transaction: COMMIT when it ends, ROLLBACK when it raises.

    ``write=True`` begins IMMEDIATE (takes the write lock now); ``write=False`` begins DEFERRED, for a consistent
    snapshot over several reads. Nested use on the same thread becomes a SAVEPOINT, so an inner failure that the
    outer block catches undoes only the inner work. Holds the connection's lock throughout.
    """
    lock = getattr(conn, "lock", None) or nullcontext()
    with lock:
        if conn.in_transaction:
            with _savepoint(conn):
                yield conn
            return
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        try:
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


@contextmanager
def _savepoint(conn: sqlite3.Connection) -> Iterator[None]:
    # Savepoint names may repeat: RELEASE and ROLLBACK TO act on the innermost one with that name.
    conn.execute("SAVEPOINT partyflow_nested")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK TO partyflow_nested")
        conn.execute("RELEASE partyflow_nested")
        raise
    conn.execute("RELEASE partyflow_nested")


def migrate(conn: sqlite3.Connection, component: str, steps: Sequence[MigrationStep]) -> int:
    """Bring `component`'s schema up to ``len(steps)`` by applying only the steps it has not had yet.

    Step *n* (0-based) moves version *n* to *n + 1*. All missing steps and the version bump run in one transaction,
    so a failure leaves the previous version intact. Steps are append-only: never edit or remove a released one.
    A function step must not call ``executescript`` (it commits implicitly). Returns the resulting version.

    Raises StoreError when the database was written by a newer partyflow that knows more steps than `steps`.
    """
    with transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        row = conn.execute("SELECT version FROM schema_versions WHERE component = ?", (component,)).fetchone()
        current = 0 if row is None else row[0]
        if current > len(steps):
            raise StoreError(
                f"the {component!r} schema is at version {current}, but this partyflow only knows up to "
                f"version {len(steps)}",
                path=database_file(conn),
                hint="upgrade partyflow, or point it at another home directory",
            )
        for step in steps[current:]:
            _apply(conn, step)
        if current < len(steps):
            conn.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?)"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, len(steps)),
            )
    return len(steps)


def schema_version(conn: sqlite3.Connection, component: str) -> int:
    """The version `component`'s schema is at (0 when it has never been migrated)."""
    with transaction(conn, write=False):
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_versions'"
        ).fetchone()
        if not exists:
            return 0
        row = conn.execute("SELECT version FROM schema_versions WHERE component = ?", (component,)).fetchone()
    return 0 if row is None else row[0]


def database_file(conn: sqlite3.Connection) -> str:
    """The file behind `conn`'s main database ('' for an in-memory one), for error messages."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return file
    return ""


def _apply(conn: sqlite3.Connection, step: MigrationStep) -> None:
    if callable(step):
        step(conn)
        return
    for statement in _statements(step):
        conn.execute(statement)


def _statements(script: str) -> Iterator[str]:
    """Split an SQL script into complete statements (``executescript`` would commit our transaction)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                yield pending.strip()
            pending = ""
    if pending.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement in migration step: {pending.strip()[:80]!r}")
