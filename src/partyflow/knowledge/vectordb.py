"""Qdrant as the vector index of a knowledge base, through the official client (qdrant-client).

As with graph databases (graphdb.py), the knowledge base's SQLite file stays the system of record: chunk vectors
are kept there, each transaction records the chunks it added or removed in an outbox (`vector_outbox`), and after
the commit they are upserted into (or deleted from) the Qdrant collection. Searches send what is pending first,
so they never miss a committed chunk. An unreachable Qdrant refuses an ingest before anything is written; if it
drops during one, the next ingest or search catches up. Keyword search and the graph stay in SQLite.

Setting (`vector_store` of a knowledge base):
    sqlite                                   exact search over the vectors in SQLite (default)
    qdrant://HOST:PORT/COLLECTION            a Qdrant server (API key from $PARTYFLOW_QDRANT_API_KEY);
                                             qdrants:// for TLS
    qdrant+local:///ABS/PATH#COLLECTION      the client's embedded local mode, storing in that folder

No Qdrant server can be installed here: tests run the client's local mode, which serves the same client API.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlparse

import numpy as np

from partyflow.knowledge.errors import KnowledgeError, MissingExtraError
from partyflow.knowledge.store import Scored


class QdrantIndex:
    def __init__(self, setting: str) -> None:
        try:
            from qdrant_client import QdrantClient, models
        except ImportError:
            raise MissingExtraError("qdrant_client", "qdrant") from None
        self.target = setting
        self._models = models
        url = urlparse(setting)
        try:
            if url.scheme == "qdrant+local":
                self.collection = url.fragment or "partyflow"
                self._client = QdrantClient(path=url.path)
            elif url.scheme in ("qdrant", "qdrants"):
                self.collection = url.path.strip("/") or "partyflow"
                self._client = QdrantClient(host=url.hostname or "localhost", port=url.port or 6333,
                                            https=url.scheme == "qdrants", timeout=10,
                                            check_compatibility=False,  # check() reports an unreachable server
                                            api_key=os.environ.get("PARTYFLOW_QDRANT_API_KEY") or None)
            else:
                raise KnowledgeError(f"unknown vector store {setting!r}", where="vector_store",
                                     hint="use sqlite, qdrant://HOST:PORT/COLLECTION or "
                                          "qdrant+local:///PATH#COLLECTION")
        except KnowledgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - the client raises its own types (a locked local folder too)
            raise self.unreachable(exc) from None

    def unreachable(self, exc: BaseException) -> KnowledgeError:
        return KnowledgeError(f"the vector database is unreachable ({type(exc).__name__}: {exc})",
                              where=f"vector_store {self.target}",
                              hint="start it or fix the setting; the knowledge base itself is unchanged, and "
                                   "pending vectors are sent on the next ingest or search")

    def check(self, dimensions: int | None) -> None:
        """Reachable, and the collection exists with the knowledge base's vector size (created if missing)."""
        try:
            if not self._client.collection_exists(self.collection):
                if dimensions is None:
                    return  # created with the first vectors
                self._create(dimensions)
                return
            size = self._client.get_collection(self.collection).config.params.vectors.size
        except Exception as exc:  # noqa: BLE001
            raise self.unreachable(exc) from None
        if dimensions is not None and size != dimensions:
            raise KnowledgeError(f"collection {self.collection!r} holds {size}-dimensional vectors, this knowledge "
                                 f"base {dimensions}-dimensional ones", where=f"vector_store {self.target}",
                                 hint="use another collection name")

    def _create(self, dimensions: int) -> None:
        models = self._models
        self._client.create_collection(self.collection, vectors_config=models.VectorParams(
            size=dimensions, distance=models.Distance.COSINE))

    def apply(self, upserts: Sequence[tuple[int, int, np.ndarray]], deletes: Sequence[int]) -> None:
        """Upsert (chunk id, document id, vector) points and delete chunk ids."""
        models = self._models
        try:
            if upserts and not self._client.collection_exists(self.collection):
                self._create(len(upserts[0][2]))
            if deletes and self._client.collection_exists(self.collection):
                for batch in _batches(list(deletes)):
                    self._client.delete(self.collection, points_selector=models.PointIdsList(points=list(batch)))
            for batch in _batches(list(upserts)):
                self._client.upsert(self.collection, points=[
                    models.PointStruct(id=chunk_id, vector=vector.tolist(), payload={"doc_id": doc_id})
                    for chunk_id, doc_id, vector in batch])
        except Exception as exc:  # noqa: BLE001
            raise self.unreachable(exc) from None

    def search(self, query: np.ndarray, k: int, allowed_docs: Iterable[int] | None) -> list[Scored]:
        models = self._models
        condition = None
        if allowed_docs is not None:
            condition = models.Filter(must=[models.FieldCondition(
                key="doc_id", match=models.MatchAny(any=sorted(allowed_docs)))])
        try:
            if not self._client.collection_exists(self.collection):
                return []
            points = self._client.query_points(self.collection, query=query.tolist(), limit=k,
                                               query_filter=condition).points
        except Exception as exc:  # noqa: BLE001
            raise self.unreachable(exc) from None
        return [Scored(int(p.id), float(p.score)) for p in points]

    def close(self) -> None:
        self._client.close()


def _batches(items: Sequence[Any], size: int = 256) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
