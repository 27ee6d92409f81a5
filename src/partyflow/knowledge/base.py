"""A knowledge base: create, open, ingest (incrementally, one atomic transaction per document), search in six
modes and answer with citations. The object the CLI, the nodes and Python users hold.

Layout: `<home>/knowledge/<name>/kb.sqlite` (see `store.py` for why one SQLite file). The knowledge base's
settings (embedder, chunking, graph and its LLM) live in the file's `meta` table, so a copy of the file is the
whole knowledge base; opening it with another embedding model is refused, because its vectors would not compare.
"""

from __future__ import annotations

import fnmatch
import heapq
import json
import re
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from partyflow.config import Home
from partyflow.knowledge import graph as graph_ops
from partyflow.knowledge.chunking import Chunk, FileTokenizer, RegexTokenizer, Tokenizer, split_text
from partyflow.knowledge.embeddings import CachedEmbedder, Embedder, TransformersEmbedder, make_embedder
from partyflow.knowledge.errors import DocumentError, KnowledgeError
from partyflow.knowledge.llm_tasks import DEFAULT_ENTITY_TYPES, Extraction, KnowledgeLLM
from partyflow.knowledge.loaders import MAX_FILE_BYTES, Document, content_hash, iter_files, load_bytes
from partyflow.knowledge.store import (
    Scored,
    StoreConnection,
    VectorIndex,
    bump,
    fuse,
    get_meta,
    keyword_search,
    open_store,
    set_meta,
    to_blob,
)
from partyflow.store.sqlite import StoreError, transaction

Mode = Literal["naive", "keyword", "hybrid", "local", "global", "mix"]
MODES: tuple[str, ...] = ("naive", "keyword", "hybrid", "local", "global", "mix")
GRAPH_MODES = frozenset({"local", "global", "mix"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Progress = Callable[[str, int, int, str], None]
"""progress(stage, done, total, detail): called as an ingest goes, for progress bars."""


@dataclass(frozen=True)
class KBConfig:
    """A knowledge base's settings, fixed at creation (the LLM ones may be changed with `update_config`)."""

    embedder: str = "hash"
    chunk_tokens: int = 400
    overlap_tokens: int = 50
    tokenizer: str = "auto"  # auto: the embedding model's tokenizer.json when it has one, else regex
    graph: bool = False
    llm: str | None = None  # a provider name of config.toml, for extraction, summaries, reports and answers
    llm_model: str | None = None
    gleaning: int = 0
    concurrency: int = 4
    entity_types: tuple[str, ...] = DEFAULT_ENTITY_TYPES
    description_limit: int = 1200
    max_file_bytes: int = MAX_FILE_BYTES
    vector_store: str = "sqlite"
    graph_store: str = "sqlite"
    ann_threshold: int = 50_000  # chunks from which vector search uses the IVF index (ann.py); 0: always exact
    ann_probe: float = 0.2  # fraction of IVF cells searched (recall@10 vs exact ~0.86 on MiniLM vectors)

    def check(self) -> KBConfig:
        if not 16 <= self.chunk_tokens <= 8192:
            raise KnowledgeError("chunk_tokens must be between 16 and 8192", where="chunk_tokens")
        if not 0 <= self.overlap_tokens < self.chunk_tokens // 2:
            raise KnowledgeError("overlap_tokens must be between 0 and half of chunk_tokens", where="overlap_tokens")
        if not 0 < self.ann_probe <= 1 or self.ann_threshold < 0:
            raise KnowledgeError("ann_probe must be in (0, 1] and ann_threshold at least 0", where="ann_probe")
        if self.vector_store != "sqlite" and not self.vector_store.startswith(
                ("qdrant://", "qdrants://", "qdrant+local://")):
            raise KnowledgeError(f"vector store {self.vector_store!r} is not available", where="vector_store",
                                 hint="use sqlite, qdrant://HOST:PORT/COLLECTION or qdrant+local:///PATH#COLLECTION")
        if self.graph_store != "sqlite" and not self.graph_store.startswith(
                ("falkordb://", "falkordb+unix://", "neo4j://", "bolt://", "neo4j+s://", "bolt+s://")):
            raise KnowledgeError(f"graph store {self.graph_store!r} is not available", where="graph_store",
                                 hint="use sqlite, falkordb://HOST:PORT/GRAPH, falkordb+unix:///SOCKET#GRAPH or "
                                      "neo4j://HOST:PORT/DATABASE")
        return self

    @classmethod
    def from_json(cls, text: str) -> KBConfig:
        data = json.loads(text)
        data["entity_types"] = tuple(data.get("entity_types", DEFAULT_ENTITY_TYPES))
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    chunks: int = 0
    embedded: int = 0
    seconds: float = 0.0
    llm: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Citation:
    """One retrieved chunk: `n` is its number in the answer's context ([n])."""

    n: int
    chunk_id: int
    path: str
    heading: str
    page: int | None
    seq: int
    score: float
    text: str

    def label(self) -> str:
        where = Path(self.path).name + (f" § {self.heading}" if self.heading else "")
        return where + (f" (page {self.page})" if self.page else "")


@dataclass
class SearchResult:
    query: str
    mode: str
    chunks: list[Citation]
    entities: list[dict[str, Any]] = field(default_factory=list)
    relations: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    answer: str | None = None
    seconds: float = 0.0

    def context(self, max_chars: int = 24_000) -> str:
        """The numbered context an LLM answers from: chunks [n], then graph facts and community reports."""
        parts = [f"[{c.n}] {c.label()}\n{c.text}" for c in self.chunks]
        if self.entities:
            parts.append("Entities:\n" + "\n".join(f"- {e['name']} ({e['type']}): {e['description']}"
                                                   for e in self.entities))
        if self.relations:
            parts.append("Relations:\n" + "\n".join(f"- {r['source']} -> {r['target']}: {r['description']}"
                                                    for r in self.relations))
        if self.reports:
            parts.append("Community reports:\n" + "\n".join(f"- {r['title']}: {r['summary']}" for r in self.reports))
        return "\n\n".join(parts)[:max_chars]

    def as_dict(self) -> dict[str, Any]:
        return {"query": self.query, "mode": self.mode, "answer": self.answer, "seconds": round(self.seconds, 4),
                "chunks": [asdict(c) for c in self.chunks], "entities": self.entities,
                "relations": self.relations, "reports": self.reports}


def knowledge_root(home: Home) -> Path:
    return home.root / "knowledge"


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise KnowledgeError(f"{name!r} is not a valid knowledge base name", where="name",
                             hint="use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
    return name


def list_bases(home: Home) -> list[str]:
    root = knowledge_root(home)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "kb.sqlite").is_file() and _NAME.match(p.name))


def delete_base(home: Home, name: str) -> None:
    folder = knowledge_root(home) / check_name(name)
    if not (folder / "kb.sqlite").is_file():
        raise KnowledgeError("no such knowledge base", where=name, hint="see `partyflow kb list`")
    shutil.rmtree(folder)


class KnowledgeBase:
    """One knowledge base; thread-safe (one SQLite connection guarded by its lock). Close it when done."""

    def __init__(self, home: Home, name: str, conn: StoreConnection, config: KBConfig, *,
                 chat: Any = None, manager: Any = None, meter: Any = None, health: Any = None) -> None:
        self.home = home
        self.name = name
        self.conn = conn
        self.config = config
        self._manager = manager
        self._chat = chat
        self._owns_chat = chat is None
        self._llm: KnowledgeLLM | None = None
        self._graphdb: Any = None
        self._vectordb: Any = None
        self._count: tuple[str | None, int] = (None, 0)
        # meter/health: the running engine's usage ledger and routers' health, for provider embedders (issue 18)
        inner = make_embedder(config.embedder, home, manager=manager, meter=meter, health=health)
        self.embedder = CachedEmbedder(inner, conn)
        self.tokenizer = _tokenizer(config.tokenizer, inner)
        self._chunks = VectorIndex(conn, "SELECT id, vector, doc_id, cell FROM chunks", "revision", cells=True,
                                   probe=config.ann_probe)
        self._centroids: tuple[str | None, np.ndarray | None] = (None, None)
        self._entities = VectorIndex(conn, "SELECT id, vector FROM entities WHERE vector IS NOT NULL",
                                     "graph_revision")

    # --- lifecycle ----------------------------------------------------------------------------------------------

    @classmethod
    def path_for(cls, home: Home, name: str) -> Path:
        return knowledge_root(home) / check_name(name) / "kb.sqlite"

    @classmethod
    def create(cls, home: Home, name: str, config: KBConfig | None = None, *, exist_ok: bool = False,
               chat: Any = None, manager: Any = None, meter: Any = None, health: Any = None) -> KnowledgeBase:
        config = (config or KBConfig()).check()
        path = cls.path_for(home, name)
        if path.exists():
            if not exist_ok:
                raise KnowledgeError("a knowledge base with this name exists", where=name,
                                     hint="pick another name, or delete it first")
            return cls.open(home, name, chat=chat, manager=manager, meter=meter, health=health)
        make_embedder(config.embedder, home)  # an unknown embedder is refused before anything is written
        conn = _open(path)
        with transaction(conn):
            set_meta(conn, "config", json.dumps(asdict(config)))
            set_meta(conn, "created", str(time.time()))
        return cls(home, name, conn, config, chat=chat, manager=manager, meter=meter, health=health)

    @classmethod
    def open(cls, home: Home, name: str, *, embedder: str | None = None, chat: Any = None,
             manager: Any = None, meter: Any = None, health: Any = None) -> KnowledgeBase:
        path = cls.path_for(home, name)
        if not path.is_file():
            raise KnowledgeError("no such knowledge base", where=name,
                                 hint=f"create it: partyflow kb create {name}")
        conn = _open(path)
        raw = get_meta(conn, "config")
        if raw is None:
            conn.close()
            raise KnowledgeError(f"{path} has no knowledge base settings", where=name)
        config = KBConfig.from_json(raw)
        if embedder is not None and embedder != config.embedder:
            conn.close()
            raise KnowledgeError(f"this knowledge base was built with embedder {config.embedder!r}, not "
                                 f"{embedder!r}; its vectors cannot be compared with another model's",
                                 where=f"{name}: embedder", hint="use the same embedder, or create a new knowledge base")
        try:
            return cls(home, name, conn, config, chat=chat, manager=manager, meter=meter, health=health)
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        if self._vectordb is not None:
            self._vectordb.close()
            self._vectordb = None
        if self._graphdb is not None:
            self._graphdb.close()
            self._graphdb = None
        if self._chat is not None and self._owns_chat:
            closer = getattr(self._chat, "close", None)
            if closer is not None:
                closer()
        self.conn.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update_config(self, **changes: Any) -> KBConfig:
        """Change settings that do not invalidate stored data (the LLM, gleaning, concurrency, limits)."""
        frozen = {"embedder", "chunk_tokens", "overlap_tokens", "tokenizer"}
        if bad := frozen & set(changes):
            raise KnowledgeError(f"{', '.join(sorted(bad))} cannot change after creation", where=self.name,
                                 hint="create a new knowledge base and ingest again")
        self.config = replace(self.config, **changes).check()
        self._chunks.probe = self.config.ann_probe
        with transaction(self.conn):
            set_meta(self.conn, "config", json.dumps(asdict(self.config)))
        self._llm = None
        if self._graphdb is not None:
            self._graphdb.close()
            self._graphdb = None
        if "vector_store" in changes:  # a new index is filled from the vectors kept in SQLite
            if self._vectordb is not None:
                self._vectordb.close()
                self._vectordb = None
            with transaction(self.conn):
                self.conn.execute("DELETE FROM vector_outbox")
                if self.external_vectors:
                    self.conn.execute("INSERT INTO vector_outbox (chunk_id, op) SELECT id, 'upsert' FROM chunks")
        return self.config

    # --- the external graph database ----------------------------------------------------------------------

    @property
    def external_vectors(self) -> bool:
        return self.config.vector_store != "sqlite"

    def vector_db(self) -> Any:
        """The Qdrant index (vectordb.py) of a knowledge base whose vector_store is one."""
        from partyflow.knowledge.vectordb import QdrantIndex

        if self._vectordb is None:
            self._vectordb = QdrantIndex(self.config.vector_store)
        return self._vectordb

    def sync_vectors(self) -> int:
        """Send pending chunk additions and removals to the external vector index; how many were sent."""
        if not self.external_vectors:
            return 0
        with self.conn.lock:
            pending = self.conn.execute("SELECT o.chunk_id, o.op, c.doc_id, c.vector FROM vector_outbox o "
                                        "LEFT JOIN chunks c ON c.id = o.chunk_id ORDER BY o.chunk_id").fetchall()
        if not pending:
            return 0
        upserts = [(cid, doc, np.frombuffer(blob, dtype=np.float32)) for cid, op, doc, blob in pending
                   if op == "upsert" and blob is not None]
        deletes = [cid for cid, op, _, blob in pending if op == "delete" or blob is None]
        self.vector_db().apply(upserts, deletes)
        with transaction(self.conn):
            self.conn.executemany("DELETE FROM vector_outbox WHERE chunk_id = ? AND op = ?",
                                  [(cid, op) for cid, op, _, _ in pending])
        return len(pending)

    @property
    def external_graph(self) -> bool:
        return self.config.graph_store != "sqlite"

    def graph_db(self) -> Any:
        """The connection to the configured graph database (graphdb.py); KnowledgeError when there is none."""
        from partyflow.knowledge import graphdb

        if self._graphdb is None:
            runner = graphdb.connect(self.config.graph_store)
            if runner is None:
                raise KnowledgeError("this knowledge base keeps its graph in the embedded store only",
                                     where=f"{self.name}: graph_store",
                                     hint="Cypher needs a graph database: falkordb://... or neo4j://...")
            self._graphdb = runner
        return self._graphdb

    def sync_graph(self) -> int:
        """Send pending graph changes to the graph database; how many entities were written or removed."""
        if not self.external_graph:
            return 0
        from partyflow.knowledge import graphdb

        with self.conn.lock:
            keys = [row[0] for row in self.conn.execute("SELECT key FROM graph_outbox ORDER BY key")]
        if not keys:
            return 0
        graphdb.push(self.graph_db(), self.conn, keys)
        with transaction(self.conn):
            for start in range(0, len(keys), 500):
                batch = keys[start:start + 500]
                self.conn.execute(f"DELETE FROM graph_outbox WHERE key IN ({','.join('?' * len(batch))})", batch)
        return len(keys)

    def cypher(self, query: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        """Run Cypher on the graph database (entities are `(:Entity {key, name, type, description})`, relations
        `[:RELATES {description, keywords, weight}]`), after sending pending changes."""
        from partyflow.knowledge import graphdb

        if not query.strip():
            raise KnowledgeError("the Cypher query is empty", where="query")
        self.sync_graph()
        runner = self.graph_db()
        try:
            return runner.run(query, params)
        except Exception as exc:  # noqa: BLE001 - drivers raise their own types for bad queries and lost links
            if "connect" in type(exc).__name__.lower() or isinstance(exc, OSError):
                raise graphdb.unreachable(runner, exc) from None
            raise KnowledgeError(f"the graph database refused the query ({exc})", where="query") from None

    # --- the LLM ------------------------------------------------------------------------------------------------

    def llm(self, purpose: str = "this") -> KnowledgeLLM:
        if self._llm is None:
            if self._chat is None:
                if not self.config.llm:
                    raise KnowledgeError(f"{purpose} needs an LLM, and none is configured", where=f"{self.name}: llm",
                                         hint=f"set one: partyflow kb create {self.name} --llm PROVIDER (or pass --llm)")
                self._chat = _open_chat(self.home, self.config.llm)
            self._llm = KnowledgeLLM(self._chat, self.conn, model=self.config.llm_model, gleaning=self.config.gleaning,
                                     concurrency=self.config.concurrency, entity_types=self.config.entity_types)
        return self._llm

    # --- ingest -------------------------------------------------------------------------------------------------

    def ingest(self, paths: Iterable[str | Path], *, prune: bool = True, force: bool = False,
               progress: Progress | None = None) -> IngestReport:
        """Ingest files and folders: new and changed files are (re)indexed, unchanged ones skipped by content hash,
        and with `prune`, documents that were under an ingested folder but are gone now are removed."""
        started = time.perf_counter()
        report = IngestReport()
        before = self._counters()
        self._check_external()
        files: list[Path] = []
        roots: list[Path] = []
        for raw in paths:
            root = Path(raw).expanduser().resolve()
            try:
                found = list(iter_files(root))
            except DocumentError as exc:
                report.failed.append({"path": str(root), "error": exc.message})
                continue
            files.extend(found)
            if root.is_dir():
                roots.append(root)
        seen = {str(f) for f in files}
        for done, file in enumerate(files):
            if progress:
                progress("ingest", done, len(files), str(file))
            self._ingest_file(file, report, force=force)
        if prune:
            for root in roots:
                for path in self._paths_under(root):
                    if path not in seen:
                        self.remove_document(path, sync=False)
                        report.removed.append(path)
                        self._after_commit(report)
        if progress:
            progress("ingest", len(files), len(files), "done")
        self._finish(report, started, before)
        return report

    def add_documents(self, documents: Sequence[Document], *, progress: Progress | None = None) -> IngestReport:
        """Ingest already-loaded documents (the Load Documents node's output); unchanged ones are skipped."""
        started = time.perf_counter()
        report = IngestReport()
        before = self._counters()
        self._check_external()
        for done, document in enumerate(documents):
            if progress:
                progress("ingest", done, len(documents), document.path)
            try:
                self._ingest_document(document, report)
            except KnowledgeError as exc:
                report.failed.append({"path": document.path, "error": str(exc)})
        if progress:
            progress("ingest", len(documents), len(documents), "done")
        self._finish(report, started, before)
        return report

    def _check_external(self) -> None:
        """An unreachable graph or vector database refuses the ingest before anything is written, naming the
        setting; what an earlier ingest left pending is sent first."""
        if self.external_vectors:
            stored = get_meta(self.conn, "dimensions")
            self.vector_db().check(int(stored) if stored else None)
            self.sync_vectors()
        if self.external_graph:
            from partyflow.knowledge import graphdb

            graphdb.check(self.graph_db())

    def _after_commit(self, report: IngestReport) -> None:
        for external, sync, setting in ((self.external_vectors, self.sync_vectors, self.config.vector_store),
                                        (self.external_graph, self.sync_graph, self.config.graph_store)):
            if not external:
                continue
            try:
                sync()
            except KnowledgeError as exc:
                if not any(f["path"] == setting for f in report.failed):
                    report.failed.append({"path": setting, "error": str(exc)})

    def _counters(self) -> dict[str, int]:
        return {"embedded": self.embedder.computed, **(self._llm.stats.as_dict() if self._llm else {})}

    def _finish(self, report: IngestReport, started: float, before: dict[str, int]) -> None:
        """Report what this ingest cost (the counters are the knowledge base's running totals)."""
        self._maybe_train()
        now = self._counters()
        report.seconds = time.perf_counter() - started
        report.embedded = now.pop("embedded") - before.pop("embedded")
        report.llm = {key: value - before.get(key, 0) for key, value in now.items()}

    def _ingest_file(self, file: Path, report: IngestReport, *, force: bool) -> None:
        path = str(file)
        try:
            size = file.stat().st_size
            if size > self.config.max_file_bytes:
                raise DocumentError(f"the file is {size / 1e6:.1f} MB, above the limit of "
                                    f"{self.config.max_file_bytes / 1e6:.0f} MB", where=path,
                                    hint="split it, or raise max_file_bytes")
            data = file.read_bytes()
            if not force and self._stored_hash(path) == content_hash(data):
                report.unchanged.append(path)
                return
            document = load_bytes(path, data, max_bytes=self.config.max_file_bytes)
            self._ingest_document(document, report, force=force)
        except OSError as exc:
            report.failed.append({"path": path, "error": f"cannot read the file ({exc.strerror or exc})"})
        except KnowledgeError as exc:
            report.failed.append({"path": path, "error": exc.message if exc.where == path else str(exc)})

    def _stored_hash(self, path: str) -> str | None:
        with self.conn.lock:
            row = self.conn.execute("SELECT hash FROM documents WHERE path = ?", (path,)).fetchone()
        return None if row is None else row[0]

    def _paths_under(self, root: Path) -> list[str]:
        prefix = str(root).rstrip("/") + "/"
        with self.conn.lock:
            return [row[0] for row in self.conn.execute(
                "SELECT path FROM documents WHERE substr(path, 1, ?) = ?", (len(prefix), prefix))]

    def _ingest_document(self, document: Document, report: IngestReport, *, force: bool = False) -> None:
        """Chunk, embed and extract outside the write lock, then replace the document in one transaction."""
        previous = self._stored_hash(document.path)
        if previous == document.content_hash and not force:
            report.unchanged.append(document.path)
            return
        chunks = split_text(document.text, chunk_tokens=self.config.chunk_tokens,
                            overlap_tokens=self.config.overlap_tokens, tokenizer=self.tokenizer)
        if not chunks:
            raise DocumentError("no text to index", where=document.path)
        vectors = self.embedder.embed([chunk.embed_text for chunk in chunks])
        self._check_dimensions(vectors.shape[1])
        extractions = (self.llm("graph extraction").extract_many([c.embed_text for c in chunks], where=document.path)
                       if self.config.graph else None)
        with transaction(self.conn):
            self._check_dimensions(vectors.shape[1], write=True)
            entities: set[int] = set()
            relations: set[int] = set()
            old = self.conn.execute("SELECT id FROM documents WHERE path = ?", (document.path,)).fetchone()
            if old is not None:
                entities, relations = self._delete_rows(old[0])
            doc_id = self.conn.execute(
                "INSERT INTO documents (path, hash, format, size, chunks, ingested_at) VALUES (?,?,?,?,?,?)",
                (document.path, document.content_hash, document.format, len(document.text), len(chunks),
                 time.time())).lastrowid
            cells = self._cells_of(vectors)
            for chunk, vector, extraction, cell in zip(chunks, vectors, extractions or [None] * len(chunks), cells,
                                                       strict=True):
                chunk_id = self.conn.execute(
                    "INSERT INTO chunks (doc_id, seq, text, heading, page, tokens, hash, vector, cell) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (doc_id, chunk.seq, chunk.text, chunk.heading, chunk.page, chunk.tokens,
                     content_hash(chunk.embed_text.encode()), to_blob(vector), cell)).lastrowid
                self.conn.execute("INSERT INTO chunk_fts (rowid, body) VALUES (?, ?)", (chunk_id, chunk.embed_text))
                if self.external_vectors:
                    self.conn.execute("INSERT OR REPLACE INTO vector_outbox (chunk_id, op) VALUES (?, 'upsert')",
                                      (chunk_id,))
                if extraction is not None:
                    e, r = self._add_extraction(extraction, chunk_id, f"chunk:{document.path}#{chunk.seq}")
                    entities |= e
                    relations |= r
            self.refresh_graph(entities, relations)
            bump(self.conn, "revision")
        (report.updated if previous is not None else report.added).append(document.path)
        report.chunks += len(chunks)
        self._after_commit(report)

    def _cells_of(self, vectors: np.ndarray) -> list[int | None]:
        """IVF cells of new chunks, once the index is trained (ann.py); None before."""
        from partyflow.knowledge.ann import assign, load_centroids

        revision = get_meta(self.conn, "ann_revision")
        if revision is None:
            return [None] * len(vectors)
        if self._centroids[0] != revision:
            self._centroids = (revision, load_centroids(self.conn))
        centroids = self._centroids[1]
        if centroids is None:
            return [None] * len(vectors)
        return [int(cell) for cell in assign(centroids, vectors)]

    def train_ann(self) -> int:
        """(Re)build the IVF index now; the number of cells (normally automatic past `ann_threshold`)."""
        from partyflow.knowledge.ann import train

        return train(self.conn)

    def _maybe_train(self) -> None:
        from partyflow.knowledge.ann import needs_training

        if not self.external_vectors and needs_training(self.conn, self._chunk_count(),
                                                          self.config.ann_threshold):
            self.train_ann()

    def _check_dimensions(self, dimensions: int, *, write: bool = False) -> None:
        stored = get_meta(self.conn, "dimensions")
        if stored is None:
            if write:
                set_meta(self.conn, "dimensions", str(dimensions))
            return
        if int(stored) != dimensions:
            raise KnowledgeError(
                f"embedder {self.config.embedder!r} gives {dimensions}-dimensional vectors, but this knowledge "
                f"base holds {stored}-dimensional ones", where=f"{self.name}: embedder",
                hint="the model behind the embedder changed; use the original model or create a new knowledge base")

    def _add_extraction(self, extraction: Extraction, chunk_id: int, origin: str) -> tuple[set[int], set[int]]:
        ids: dict[str, int] = {}
        for entity in extraction.entities:
            entity_id = graph_ops.upsert_entity(self.conn, entity.name, entity.type, entity.description,
                                                chunk_id=chunk_id, origin=origin)
            if entity_id is not None:
                ids.setdefault(graph_ops.entity_key(entity.name), entity_id)
        relations: set[int] = set()
        for relation in extraction.relations:
            endpoints = []
            for name in (relation.source, relation.target):
                key = graph_ops.entity_key(name)
                if key and key not in ids:  # an endpoint the model did not list: it is still mentioned here
                    entity_id = graph_ops.upsert_entity(self.conn, name, "concept", "", chunk_id=chunk_id,
                                                        origin=origin)
                    if entity_id is not None:
                        ids[key] = entity_id
                endpoints.append(ids.get(key))
            if None in endpoints or endpoints[0] == endpoints[1]:
                continue
            relations.add(graph_ops.upsert_relation(self.conn, endpoints[0], endpoints[1], relation.description,
                                                    relation.keywords, relation.weight, chunk_id=chunk_id,
                                                    origin=origin))
        return set(ids.values()), relations

    def refresh_graph(self, entities: set[int], relations: set[int]) -> None:
        """Drop facts that lost their sources and re-merge the rest (inside the caller's transaction)."""
        summarize = None
        if self.config.llm or self._chat is not None:
            def summarize(name: str, descriptions: list[str], limit: int) -> str:
                return self.llm("description summaries").summarize(name, descriptions, limit)
        graph_ops.refresh(self.conn, entities, relations, embed=self.embedder.embed,
                          description_limit=self.config.description_limit, summarize=summarize,
                          outbox=self.external_graph)

    def _delete_rows(self, doc_id: int) -> tuple[set[int], set[int]]:
        chunk_sql = "SELECT id FROM chunks WHERE doc_id = ?"
        entities, relations = graph_ops.affected_by_chunks(self.conn, chunk_sql, (doc_id,))
        self.conn.execute(f"DELETE FROM chunk_fts WHERE rowid IN ({chunk_sql})", (doc_id,))
        if self.external_vectors:
            self.conn.execute("INSERT OR REPLACE INTO vector_outbox (chunk_id, op) SELECT id, 'delete' FROM chunks "
                              "WHERE doc_id = ?", (doc_id,))
        self.conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        return entities, relations

    def remove_document(self, path: str, *, sync: bool = True) -> bool:
        """Remove a document with its chunks, vectors and graph contributions, atomically; whether it existed."""
        with transaction(self.conn):
            row = self.conn.execute("SELECT id FROM documents WHERE path = ?", (path,)).fetchone()
            if row is None:
                return False
            entities, relations = self._delete_rows(row[0])
            self.refresh_graph(entities, relations)
            bump(self.conn, "revision")
        if sync:
            self.sync_vectors()
            self.sync_graph()
        return True

    # --- search -------------------------------------------------------------------------------------------------

    def search(self, query: str, *, mode: str = "hybrid", top_k: int = 10, path_glob: str | None = None,
               answer: bool = False) -> SearchResult:
        """Retrieve (and with `answer`, answer from) the chunks and graph facts that best match `query`."""
        if mode not in MODES:
            raise KnowledgeError(f"unknown mode {mode!r}", where="mode", hint=f"use one of: {', '.join(MODES)}")
        if not query.strip():
            raise KnowledgeError("the query is empty", where="query")
        if not 1 <= top_k <= 1000:
            raise KnowledgeError("top_k must be between 1 and 1000", where="top_k")
        if mode in GRAPH_MODES and not self._has_graph():
            raise KnowledgeError(f"mode {mode!r} needs a knowledge graph, and this knowledge base has none",
                                 where=f"{self.name}: mode", hint="create it with --graph (and an LLM), or import a "
                                 "graph; naive, keyword and hybrid work without one")
        started = time.perf_counter()
        allowed = self._allowed_docs(path_glob)
        result = SearchResult(query, mode, [])
        pool = max(top_k * 3, 30)
        ranked: list[Scored]
        if mode == "naive":
            ranked = self._vector(query, top_k, allowed)
        elif mode == "keyword":
            ranked = self._keyword(query, top_k, allowed)
        elif mode == "hybrid":
            ranked = self._hybrid(query, pool, allowed)
        elif mode == "local":
            ranked = self._local(query, top_k, allowed, result)
        elif mode == "global":
            ranked = self._global(query, top_k, allowed, result)
        else:  # mix: vector, keyword and the graph's neighbourhood, the graph weighted as much as the other two
            ranked = fuse([self._vector(query, pool, allowed), self._keyword(query, pool, allowed),
                           self._local(query, pool, allowed, result)], [0.25, 0.25, 0.5])
        result.chunks = self._citations(ranked[:top_k])
        if answer:
            result.answer = self.llm("answering").answer(query, result.context())
        result.seconds = time.perf_counter() - started
        return result

    def _has_graph(self) -> bool:
        with self.conn.lock:
            return self.conn.execute("SELECT 1 FROM entities LIMIT 1").fetchone() is not None

    def _allowed_docs(self, path_glob: str | None) -> set[int] | None:
        if not path_glob:
            return None
        with self.conn.lock:
            rows = self.conn.execute("SELECT id, path FROM documents").fetchall()
        return {doc_id for doc_id, path in rows
                if fnmatch.fnmatch(path, path_glob) or fnmatch.fnmatch(Path(path).name, path_glob)}

    def _query_vector(self, query: str) -> np.ndarray:
        vector = self.embedder.embed([query])[0]
        stored = get_meta(self.conn, "dimensions")
        if stored is not None and int(stored) != vector.shape[0]:
            self._check_dimensions(vector.shape[0])
        return vector

    def _vector(self, query: str, k: int, allowed: set[int] | None) -> list[Scored]:
        if self.external_vectors:
            self.sync_vectors()
            return self.vector_db().search(self._query_vector(query), k, allowed)
        return self._chunks.search(self._query_vector(query), k, allowed)

    def _keyword(self, query: str, k: int, allowed: set[int] | None) -> list[Scored]:
        return keyword_search(self.conn, query, k, allowed, total=self._chunk_count())

    def _chunk_count(self) -> int:
        """The number of chunks, counted once per revision of the store."""
        with self.conn.lock:
            revision = get_meta(self.conn, "revision", "0")
            if self._count[0] != revision:
                self._count = (revision, self.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
        return self._count[1]

    def _hybrid(self, query: str, pool: int, allowed: set[int] | None) -> list[Scored]:
        return fuse([self._vector(query, pool, allowed), self._keyword(query, pool, allowed)],
                    [0.5, 0.5])

    def _match_entities(self, query: str, k: int) -> list[Scored]:
        """Entities named in the query (exact key match on word n-grams) first, then the nearest by vector."""
        words = graph_ops.entity_key(query).split()
        grams = {" ".join(words[i:i + n]) for n in range(1, 6) for i in range(len(words) - n + 1)}
        named: list[Scored] = []
        if grams:
            marks = ",".join("?" * len(grams))
            with self.conn.lock:
                named = [Scored(row[0], 2.0) for row in self.conn.execute(
                    f"SELECT id FROM entities WHERE key IN ({marks})", sorted(grams))]
        nearest = self._entities.search(self._query_vector(query), k)
        seen = {s.id for s in named}
        return (named + [s for s in nearest if s.id not in seen])[:max(k, len(named))]

    def _local(self, query: str, k: int, allowed: set[int] | None, result: SearchResult) -> list[Scored]:
        entities = self._match_entities(query, max(k, 10))
        weight = {s.id: 1.0 / (rank + 1) for rank, s in enumerate(entities)}
        with transaction(self.conn, write=False):
            marks = ",".join("?" * len(weight)) or "NULL"
            ids = list(weight)
            rels = self.conn.execute(
                f"SELECT r.id, r.source_id, r.target_id, s.name, t.name, r.description, r.keywords, r.weight "
                f"FROM relations r JOIN entities s ON s.id = r.source_id JOIN entities t ON t.id = r.target_id "
                f"WHERE r.source_id IN ({marks}) OR r.target_id IN ({marks})", ids + ids).fetchall()
            rels.sort(key=lambda r: -(weight.get(r[1], 0) + weight.get(r[2], 0) + 0.01 * r[7]))
            rels = rels[:2 * k]
            neighbours = {node for r in rels for node in (r[1], r[2]) if node not in weight}
            chunk_scores: dict[int, float] = {}
            for entity_id, score in [*weight.items(), *((n, 0.0) for n in neighbours)]:
                contribution = score if score else 0.2 / (len(weight) + 1)
                for (chunk_id,) in self.conn.execute(
                        "SELECT DISTINCT chunk_id FROM entity_mentions WHERE entity_id = ? AND chunk_id IS NOT NULL",
                        (entity_id,)):
                    chunk_scores[chunk_id] = chunk_scores.get(chunk_id, 0.0) + contribution
            for rel in rels:
                for (chunk_id,) in self.conn.execute(
                        "SELECT DISTINCT chunk_id FROM relation_mentions WHERE relation_id = ? AND chunk_id IS NOT NULL",
                        (rel[0],)):
                    chunk_scores[chunk_id] = chunk_scores.get(chunk_id, 0.0) + 0.5 * (
                        weight.get(rel[1], 0) + weight.get(rel[2], 0))
            result.entities = self._entity_rows([s.id for s in entities[:k]])
            result.relations = [{"source": r[3], "target": r[4], "description": r[5], "keywords": r[6],
                                 "weight": r[7]} for r in rels]
        return self._filter_ranked(chunk_scores, allowed)

    def _global(self, query: str, k: int, allowed: set[int] | None, result: SearchResult) -> list[Scored]:
        graph_ops.ensure_communities(self.conn)
        with self.conn.lock:
            communities = self.conn.execute("SELECT id, level, members, title, report FROM communities").fetchall()
        if not communities:
            raise KnowledgeError("the graph has no communities yet (no relations between entities)",
                                 where=f"{self.name}: mode", hint="use local, mix or hybrid")
        sims = self._entity_similarities(query)
        scored = []
        for cid, level, members_json, title, report in communities:
            members = json.loads(members_json)
            best = sorted((sims.get(m, 0.0) for m in members), reverse=True)[:3]
            scored.append((sum(best) / len(best) if best else 0.0, cid, level, members, title, report))
        scored.sort(key=lambda item: (-item[0], item[2]))
        chosen = scored[:3]
        llm = self.llm("global mode's community reports")
        chunk_scores: dict[int, float] = {}
        for score, cid, level, members, title, report in chosen:
            if report is None:
                with self.conn.lock:
                    facts = graph_ops.community_facts(self.conn, members)
                made = llm.community_report(facts)
                title, report = made["title"], made["summary"]
                with transaction(self.conn):
                    self.conn.execute("UPDATE communities SET title = ?, report = ?, rating = ? WHERE id = ?",
                                      (title, report, float(made.get("rating", 0.0)), cid))
            result.reports.append({"community": cid, "level": level, "title": title, "summary": report,
                                   "score": round(score, 4), "entities": len(members)})
            with self.conn.lock:
                marks = ",".join("?" * len(members))
                for chunk_id, count in self.conn.execute(
                        f"SELECT chunk_id, COUNT(DISTINCT entity_id) FROM entity_mentions WHERE entity_id IN ({marks}) "
                        "AND chunk_id IS NOT NULL GROUP BY chunk_id", members):
                    chunk_scores[chunk_id] = chunk_scores.get(chunk_id, 0.0) + score * count
        return self._filter_ranked(chunk_scores, allowed)

    def _entity_similarities(self, query: str) -> dict[int, float]:
        hits = self._entities.search(self._query_vector(query), 10_000_000)
        return {s.id: s.score for s in hits}

    def _filter_ranked(self, scores: dict[int, float], allowed: set[int] | None, limit: int = 200) -> list[Scored]:
        """The best `limit` chunks by score (ties by id, for stable results), within the allowed documents."""
        if allowed is not None and scores:
            permitted = self._chunks_of(allowed)
            scores = {cid: score for cid, score in scores.items() if cid in permitted}
        best = heapq.nsmallest(limit, scores.items(), key=lambda pair: (-pair[1], pair[0]))
        return [Scored(cid, score) for cid, score in best]

    def _chunks_of(self, docs: set[int]) -> set[int]:
        with self.conn.lock:
            return {row[0] for doc in docs for row in self.conn.execute("SELECT id FROM chunks WHERE doc_id = ?",
                                                                        (doc,))}

    def _entity_rows(self, ids: list[int]) -> list[dict[str, Any]]:
        rows = []
        for entity_id in ids:
            row = self.conn.execute("SELECT name, type, description FROM entities WHERE id = ?",
                                    (entity_id,)).fetchone()
            if row is not None:
                rows.append({"name": row[0], "type": row[1], "description": row[2]})
        return rows

    def _citations(self, ranked: Sequence[Scored]) -> list[Citation]:
        if not ranked:
            return []
        with self.conn.lock:
            marks = ",".join("?" * len(ranked))
            rows = {row[0]: row for row in self.conn.execute(
                f"SELECT c.id, d.path, c.heading, c.page, c.seq, c.text FROM chunks c JOIN documents d "
                f"ON d.id = c.doc_id WHERE c.id IN ({marks})", [s.id for s in ranked])}
        out = []
        for s in ranked:
            row = rows.get(s.id)
            if row is not None:
                out.append(Citation(len(out) + 1, row[0], row[1], row[2], row[3], row[4], round(s.score, 6), row[5]))
        return out

    # --- graph interchange --------------------------------------------------------------------------------------

    def export_graph(self, target: str | Path, fmt: str = "json") -> list[Path]:
        from partyflow.knowledge.interchange import export_graph

        return export_graph(self, target, fmt)

    def import_graph(self, source: str | Path) -> dict[str, int]:
        from partyflow.knowledge.interchange import import_graph

        self._check_external()
        counts = import_graph(self, source)
        self.sync_graph()
        return counts

    # --- information --------------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        with transaction(self.conn, write=False):
            count = {table: self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                     for table in ("documents", "chunks", "entities", "relations", "communities")}
            count["ann_cells"] = self.conn.execute("SELECT COUNT(*) FROM ivf_centroids").fetchone()[0]
            dimensions = get_meta(self.conn, "dimensions")
        return {"name": self.name, "path": str(self.path_for(self.home, self.name)), **count,
                "dimensions": int(dimensions) if dimensions else None, "config": asdict(self.config)}

    def documents(self) -> list[dict[str, Any]]:
        with self.conn.lock:
            return [{"path": p, "hash": h, "format": f, "chunks": c} for p, h, f, c in self.conn.execute(
                "SELECT path, hash, format, chunks FROM documents ORDER BY path")]


def _open(path: Path) -> StoreConnection:
    try:
        return open_store(path)
    except StoreError as exc:
        raise KnowledgeError(exc.message, where=str(path), hint=exc.hint) from None


def _tokenizer(spec: str, embedder: Embedder) -> Tokenizer:
    if spec == "regex":
        return RegexTokenizer()
    if spec == "auto":
        if isinstance(embedder, TransformersEmbedder) and (file := embedder.tokenizer_file()) is not None:
            return FileTokenizer(file)
        return RegexTokenizer()
    if Path(spec).is_file():
        return FileTokenizer(spec)
    raise KnowledgeError(f"unknown tokenizer {spec!r}", where="tokenizer",
                         hint="use auto, regex or the path of a tokenizer.json")


def _open_chat(home: Home, provider: str) -> Any:
    from partyflow.llm import ProviderConfigError, ProvidersConfig
    from partyflow.llm.providers import create

    try:
        config = ProvidersConfig.load(home).get(provider)
        options = {} if config.type == "openai_compat" else {"home": home}
        return create(provider, config, **options)
    except ProviderConfigError as exc:
        raise KnowledgeError(str(exc), where="llm") from None


__all__ = ["Chunk", "Citation", "IngestReport", "KBConfig", "KnowledgeBase", "MODES", "SearchResult",
           "check_name", "delete_base", "list_bases"]
