"""The embedded store of one knowledge base: one SQLite file holding documents, chunks with their vectors, an
FTS5 keyword index, the graph (entities, relations and which chunk said what) and the LLM caches.

Why SQLite plus an in-process vector matrix rather than LanceDB or a vector server by default:

* **Atomic documents.** A document's chunks, vectors, keyword rows and graph contributions are written (or
  removed) in one SQLite transaction, so a crash or a failed extraction never leaves half a document, and a
  reader never sees one. With two engines (a vector table beside a metadata database) that needs a two-phase
  protocol; here it is `BEGIN IMMEDIATE ... COMMIT`.
* **BM25 for free.** FTS5 ships with Python's sqlite3 and ranks with BM25.
* **Fast enough exact search.** Vectors are float32 BLOBs, loaded once into a NumPy matrix (refreshed when the
  store's revision changes) and searched with one matrix-vector product: exact results, ~10 ms at 100k chunks of
  384 dimensions on 2 cores (see bench/bench_knowledge.py). Past a few million chunks, an ANN index or a vector
  server (Qdrant) is the better home, which is why the store sits behind the `VectorIndex` seam.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from partyflow.store.sqlite import StoreConnection, migrate, open_database, transaction

SCHEMA = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, hash TEXT NOT NULL, format TEXT NOT NULL,
        size INTEGER NOT NULL, chunks INTEGER NOT NULL, ingested_at REAL NOT NULL);
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL, text TEXT NOT NULL, heading TEXT NOT NULL, page INTEGER, tokens INTEGER NOT NULL,
        hash TEXT NOT NULL, vector BLOB NOT NULL);
    CREATE INDEX chunks_doc ON chunks(doc_id);
    CREATE VIRTUAL TABLE chunk_fts USING fts5(body, tokenize = 'unicode61 remove_diacritics 2');
    CREATE TABLE entities (
        id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, name TEXT NOT NULL, type TEXT NOT NULL,
        description TEXT NOT NULL, vector BLOB);
    CREATE TABLE entity_mentions (
        entity_id INTEGER NOT NULL REFERENCES entities(id) ON DELETE CASCADE,
        chunk_id INTEGER REFERENCES chunks(id) ON DELETE CASCADE, origin TEXT NOT NULL,
        type TEXT NOT NULL, description TEXT NOT NULL);
    CREATE INDEX entity_mentions_entity ON entity_mentions(entity_id);
    CREATE INDEX entity_mentions_chunk ON entity_mentions(chunk_id);
    CREATE TABLE relations (
        id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL REFERENCES entities(id) ON DELETE CASCADE,
        target_id INTEGER NOT NULL REFERENCES entities(id) ON DELETE CASCADE, description TEXT NOT NULL,
        keywords TEXT NOT NULL, weight REAL NOT NULL, UNIQUE (source_id, target_id));
    CREATE INDEX relations_target ON relations(target_id);
    CREATE TABLE relation_mentions (
        relation_id INTEGER NOT NULL REFERENCES relations(id) ON DELETE CASCADE,
        chunk_id INTEGER REFERENCES chunks(id) ON DELETE CASCADE, origin TEXT NOT NULL,
        description TEXT NOT NULL, keywords TEXT NOT NULL, weight REAL NOT NULL);
    CREATE INDEX relation_mentions_relation ON relation_mentions(relation_id);
    CREATE INDEX relation_mentions_chunk ON relation_mentions(chunk_id);
    CREATE TABLE communities (
        id INTEGER PRIMARY KEY, level INTEGER NOT NULL, parent INTEGER, members TEXT NOT NULL,
        title TEXT, report TEXT, rating REAL, vector BLOB);
    CREATE TABLE extraction_cache (key TEXT PRIMARY KEY, result TEXT NOT NULL);
    CREATE TABLE summary_cache (key TEXT PRIMARY KEY, text TEXT NOT NULL);
    """,
    # entities changed since the external graph database (if any) was last written; see graphdb.py
    "CREATE TABLE graph_outbox (key TEXT PRIMARY KEY);",
    # document frequencies of the keyword index's terms, to leave near-universal terms out of queries
    "CREATE VIRTUAL TABLE chunk_vocab USING fts5vocab(chunk_fts, 'row');",
    # chunks added ('upsert') or removed ('delete') since an external vector index was last written; vectordb.py
    "CREATE TABLE vector_outbox (chunk_id INTEGER PRIMARY KEY, op TEXT NOT NULL);",
    # the inverted-file index of large knowledge bases (ann.py): centroids, and each chunk's cell
    """
    CREATE TABLE ivf_centroids (cell INTEGER PRIMARY KEY, vector BLOB NOT NULL);
    ALTER TABLE chunks ADD COLUMN cell INTEGER;
    """,
]

STOPWORDS = frozenset(
    "a an and any are as at be been but by can could did do does for from had has have how i if in into is it its "
    "me my of on or our so than that the their them there these they this those to was we were what when where "
    "which who whom whose why will with would you your".split())
COMMON_FRACTION = 0.1
"""Query terms found in more than this fraction of chunks are dropped when rarer terms remain: their BM25 weight
is small, and scoring them means ranking most of the index (100k chunks: a second instead of milliseconds)."""


def open_store(path: Path) -> StoreConnection:
    """Open (creating) a knowledge base file; bulk, reproducible data, so synchronous=NORMAL (see store.sqlite)."""
    conn = open_database(path, synchronous="NORMAL")
    migrate(conn, "knowledge", SCHEMA)
    return conn


def get_meta(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else row[0]


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (key, value))


def bump(conn: sqlite3.Connection, key: str = "revision") -> int:
    value = int(get_meta(conn, key, "0") or 0) + 1
    set_meta(conn, key, str(value))
    return value


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


@dataclass(frozen=True)
class Scored:
    id: int
    score: float


class VectorIndex:
    """Exact inner-product search over the rows of one table's vector column, as a NumPy matrix in memory.

    The matrix is rebuilt when the store's revision counter moves, so any process's writes are seen by the next
    search. Vectors are unit length, so the inner product is the cosine similarity.
    """

    def __init__(self, conn: StoreConnection, sql: str, revision_key: str, *, cells: bool = False,
                 probe: float = 0.1) -> None:
        self._conn = conn
        self._sql = sql  # SELECT id, vector[, doc_id[, cell]] ...
        self._revision_key = revision_key
        self._use_cells = cells  # rows carry an IVF cell (ann.py): search the best cells once trained
        self.probe = probe
        self._cells: Any = None
        self._revision: str | None = None
        self._ids = np.zeros(0, dtype=np.int64)
        self._docs = np.zeros(0, dtype=np.int64)
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        with self._conn.lock:
            revision = get_meta(self._conn, self._revision_key, "0")
            if revision == self._revision:
                return
            rows = self._conn.execute(self._sql).fetchall()
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        docs = np.fromiter((row[2] if len(row) > 2 else 0 for row in rows), dtype=np.int64, count=len(rows))
        matrix = (np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32).reshape(len(rows), -1)
                  if rows else np.zeros((0, 0), dtype=np.float32))
        cells = None
        if self._use_cells and rows:
            from partyflow.knowledge.ann import CellSearch, load_centroids

            centroids = load_centroids(self._conn)
            if centroids is not None:
                labels = np.fromiter((-1 if row[3] is None else row[3] for row in rows), dtype=np.int64,
                                     count=len(rows))
                cells = CellSearch(centroids, labels)
                ids, docs, matrix = ids[cells.order], docs[cells.order], np.ascontiguousarray(matrix[cells.order])
        self._ids, self._docs, self._matrix, self._cells, self._revision = ids, docs, matrix, cells, revision

    def __len__(self) -> int:
        with self._lock:
            self._refresh()
            return len(self._ids)

    def search(self, query: np.ndarray, k: int, allowed_docs: Iterable[int] | None = None) -> list[Scored]:
        with self._lock:
            self._refresh()
            ids, docs, matrix, cells = self._ids, self._docs, self._matrix, self._cells
        if not len(ids) or k <= 0:
            return []
        query = np.asarray(query, dtype=np.float32)
        if cells is not None and allowed_docs is None:
            ranges = cells.candidates(query, self.probe)
            rows = np.concatenate([np.arange(start, end) for start, end in ranges])
            ids, docs = ids[rows], docs[rows]
            scores = np.concatenate([matrix[start:end] @ query for start, end in ranges])
        else:  # exact: below the threshold, and with a document filter (which may leave few candidates)
            scores = matrix @ query
        if not len(ids):
            return []
        if allowed_docs is not None:
            scores = np.where(np.isin(docs, np.fromiter(allowed_docs, dtype=np.int64)), scores, -np.inf)
        k = min(k, len(ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [Scored(int(ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]


def query_terms(text: str) -> list[str]:
    import re

    words = re.findall(r"\w+", text.lower())
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS and (len(w) > 1 or w.isdigit())))[:64]


def fts_query(terms: Sequence[str]) -> str:
    """Terms as an FTS5 query: each quoted (no operator injection), any may match (BM25 ranks)."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def _selective(conn: StoreConnection, terms: list[str], total: int) -> list[str]:
    if len(terms) < 2 or total < 1000:
        return terms
    marks = ",".join("?" * len(terms))
    frequency = dict(conn.execute(f"SELECT term, doc FROM chunk_vocab WHERE term IN ({marks})", terms).fetchall())
    present = sorted((t for t in terms if t in frequency), key=lambda t: frequency[t])
    rare = [t for t in present if frequency[t] <= COMMON_FRACTION * total]
    return rare or present[:2]


def keyword_search(conn: StoreConnection, text: str, k: int, allowed_docs: set[int] | None = None,
                   total: int = 0) -> list[Scored]:
    """BM25 over the chunks; `total` (the number of chunks) lets near-universal terms be left out."""
    terms = query_terms(text)
    if not terms or k <= 0:
        return []
    limit = k if allowed_docs is None else k * 20
    with transaction(conn, write=False):
        terms = _selective(conn, terms, total)
        if not terms:
            return []
        rows = conn.execute("SELECT rowid, bm25(chunk_fts) AS rank FROM chunk_fts WHERE chunk_fts MATCH ? "
                            "ORDER BY rank LIMIT ?", (fts_query(terms), limit)).fetchall()
        if allowed_docs is not None and rows:
            marks = ",".join("?" * len(rows))
            doc_of = dict(conn.execute(f"SELECT id, doc_id FROM chunks WHERE id IN ({marks})",
                                       [row[0] for row in rows]).fetchall())
            rows = [row for row in rows if doc_of.get(row[0]) in allowed_docs]
    return [Scored(int(rowid), float(-rank)) for rowid, rank in rows[:k]]  # bm25() is lower-is-better


def fuse(rankings: Sequence[list[Scored]], weights: Sequence[float]) -> list[Scored]:
    """Convex combination of min-max normalised scores: each list's best gets 1, its worst 0, absent 0.

    Chosen over reciprocal rank fusion after measuring both (bench/bench_knowledge.py): RRF lets chunks ranked
    middling in both lists overtake a chunk one list is sure of (an exact keyword hit on a rare name), which
    normalised scores keep on top.
    """
    total: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking:
            continue
        high = max(s.score for s in ranking)
        low = min(s.score for s in ranking)
        for s in ranking:
            value = (s.score - low) / (high - low) if high > low else 1.0
            total[s.id] = total.get(s.id, 0.0) + weight * value
    return [Scored(item, score) for item, score in sorted(total.items(), key=lambda pair: (-pair[1], pair[0]))]
