"""The usage ledger: one row per model call in the home's state.sqlite, written before the call and completed after.

A row is inserted as `unfinished` before the request is sent and updated with tokens, cost, latency and outcome
when it ends, so a process that dies mid-call leaves the call recorded as unfinished, never missing. The ledger
uses its own connection with synchronous=NORMAL: in WAL mode that survives a killed process (the promise here),
and it keeps the two writes per call well under a millisecond (only an OS crash or power loss may drop the last
ones).

Budgets are summed from this table, `partyflow models usage` reports from it, and history shows cost per prompt.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from partyflow.store.sqlite import StoreConnection, migrate, open_database, transaction

COMPONENT = "usage_ledger"
MIGRATIONS = [
    """
    CREATE TABLE llm_calls (
        id INTEGER PRIMARY KEY,
        started REAL NOT NULL,
        finished REAL,
        provider TEXT NOT NULL,
        router TEXT,
        model TEXT,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        cost REAL,
        latency REAL,
        outcome TEXT NOT NULL DEFAULT 'unfinished',
        error TEXT,
        note TEXT,
        workflow TEXT,
        prompt_id TEXT,
        node_id TEXT,
        user TEXT
    );
    CREATE INDEX llm_calls_started ON llm_calls (started);
    CREATE INDEX llm_calls_prompt ON llm_calls (prompt_id);
    """,
    # what kind of call: chat, or embeddings (issue 18: routers serve embeddings too)
    "ALTER TABLE llm_calls ADD COLUMN operation TEXT NOT NULL DEFAULT 'chat';",
]
GROUPINGS = {"provider": "provider", "model": "COALESCE(model, '')", "workflow": "COALESCE(workflow, '')",
             "user": "COALESCE(user, '')", "router": "COALESCE(router, '')",
             "day": "date(started, 'unixepoch')", "operation": "operation"}
Outcome = Literal["ok", "error", "unfinished"]


@dataclass(frozen=True)
class CallLabels:
    """Where a call came from: filled by whoever knows (the node layer knows the prompt and node)."""

    workflow: str | None = None
    prompt_id: str | None = None
    node_id: str | None = None
    user: str | None = None


@dataclass(frozen=True)
class Spent:
    cost: float
    tokens: int
    calls: int


@dataclass(frozen=True)
class UsageRow:
    key: str
    calls: int
    unfinished: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency: float | None  # mean of finished calls, seconds

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "calls": self.calls, "unfinished": self.unfinished, "errors": self.errors,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens, "cost": round(self.cost, 10),
                "mean_latency": self.latency}


class UsageLedger:
    """The `llm_calls` table of one state.sqlite. Thread-safe (one connection, the store's lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: StoreConnection = open_database(path, synchronous="NORMAL")
        migrate(self._conn, COMPONENT, MIGRATIONS)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> UsageLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writing -----------------------------------------------------------------------------------------------

    def begin(self, provider: str, model: str | None, labels: CallLabels = CallLabels(), *,
              router: str | None = None, now: float | None = None, operation: str = "chat") -> int:
        """Record a call about to be sent; returns its id for `finish`."""
        with transaction(self._conn) as conn:
            cursor = conn.execute(
                "INSERT INTO llm_calls (started, provider, router, model, workflow, prompt_id, node_id, user,"
                " operation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time() if now is None else now, provider, router, model, labels.workflow, labels.prompt_id,
                 labels.node_id, labels.user, operation))
            return int(cursor.lastrowid or 0)

    def finish(self, call_id: int, outcome: Outcome, *, prompt_tokens: int = 0, completion_tokens: int = 0,
               cost: float | None = None, latency: float | None = None, model: str | None = None,
               error: str | None = None, note: str | None = None) -> None:
        with transaction(self._conn) as conn:
            conn.execute(
                "UPDATE llm_calls SET finished = ?, outcome = ?, prompt_tokens = ?, completion_tokens = ?, cost = ?,"
                " latency = ?, model = COALESCE(?, model), error = ?, note = ? WHERE id = ?",
                (time.time(), outcome, prompt_tokens, completion_tokens, cost, latency, model, error, note, call_id))

    # --- reading -----------------------------------------------------------------------------------------------

    def spent(self, column: str, value: str, since: float) -> Spent:
        """Cost, tokens and calls of rows whose `column` is `value`, started at or after `since`."""
        if column not in ("provider", "router", "workflow", "user"):
            raise ValueError(f"cannot total by {column!r}")
        with transaction(self._conn, write=False) as conn:
            cost, tokens, calls = conn.execute(
                f"SELECT COALESCE(SUM(cost), 0), COALESCE(SUM(prompt_tokens + completion_tokens), 0), COUNT(*)"
                f" FROM llm_calls WHERE {column} = ? AND started >= ?", (value, since)).fetchone()
        return Spent(float(cost), int(tokens), int(calls))

    def report(self, by: str, since: float | None = None) -> list[UsageRow]:
        """Calls grouped by provider, model, workflow, user, router or day, most expensive first."""
        key = GROUPINGS.get(by)
        if key is None:
            raise ValueError(f"cannot group by {by!r}; use one of {', '.join(GROUPINGS)}")
        order = "key" if by == "day" else "cost DESC, calls DESC, key"
        with transaction(self._conn, write=False) as conn:
            rows = conn.execute(
                f"SELECT {key} AS key, COUNT(*) AS calls, SUM(outcome = 'unfinished'), SUM(outcome = 'error'),"
                f" SUM(prompt_tokens), SUM(completion_tokens), COALESCE(SUM(cost), 0) AS cost,"
                f" AVG(CASE WHEN outcome = 'ok' THEN latency END) AS latency"
                f" FROM llm_calls WHERE started >= ? GROUP BY key ORDER BY {order}",
                (since or 0.0,)).fetchall()
        return [UsageRow(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), float(r[6]), r[7])
                for r in rows]

    def prompt_usage(self, prompt_id: str) -> dict[str, Any]:
        """Totals of one prompt's calls, for history and metrics."""
        with transaction(self._conn, write=False) as conn:
            calls, prompt, completion, cost = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),"
                " SUM(cost) FROM llm_calls WHERE prompt_id = ?", (prompt_id,)).fetchone()
            per_provider = conn.execute(
                "SELECT provider, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost)"
                " FROM llm_calls WHERE prompt_id = ? GROUP BY provider ORDER BY provider", (prompt_id,)).fetchall()
        return {"calls": int(calls), "prompt_tokens": int(prompt), "completion_tokens": int(completion),
                "cost": cost, "by_provider": {p: {"calls": c, "prompt_tokens": pt, "completion_tokens": ct,
                                                  "cost": co} for p, c, pt, ct, co in per_provider}}

    def rows(self, limit: int = 100) -> Iterator[dict[str, Any]]:
        """The latest calls, newest first, as dicts (for tests and debugging)."""
        with transaction(self._conn, write=False) as conn:
            cursor = conn.execute("SELECT * FROM llm_calls ORDER BY id DESC LIMIT ?", (limit,))
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        for row in rows:
            yield dict(zip(names, row, strict=True))
