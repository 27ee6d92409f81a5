"""The embedded graph store: entities and relations in the knowledge base's SQLite file, with provenance.

Every fact remembers where it came from (`entity_mentions`, `relation_mentions`: a chunk, or an import), so a
document's removal takes its contributions with it and an entity that loses its last source disappears. Entity
resolution is by a normalised name key (Unicode-normalised, case-folded, punctuation and a leading article
dropped), so "The Acme Corp." and "acme corp" are one entity. An entity's description is the merge of what each
source said; when that outgrows the configured limit an LLM summarises it (cached), else whole sentences are kept
up to the limit.

Communities come from Louvain modularity on the weighted graph (networkx, seeded: the same graph gives the same
communities), at every level of its hierarchy: level 0 is the coarsest.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from partyflow.knowledge.store import StoreConnection, bump, get_meta, set_meta, to_blob

_ARTICLE = re.compile(r"^(the|a|an)\s+")


def entity_key(name: str) -> str:
    text = unicodedata.normalize("NFKC", name).casefold()
    text = " ".join(re.sub(r"[^\w\s]", " ", text).split())
    return _ARTICLE.sub("", text) or text


def upsert_entity(conn: StoreConnection, name: str, type_: str, description: str, *, chunk_id: int | None,
                  origin: str) -> int | None:
    """Add one mention of an entity (creating the entity on first sight); its id, or None for an empty name."""
    key = entity_key(name)
    if not key:
        return None
    row = conn.execute("SELECT id FROM entities WHERE key = ?", (key,)).fetchone()
    if row is None:
        entity_id = conn.execute("INSERT INTO entities (key, name, type, description) VALUES (?, ?, ?, ?)",
                                 (key, name.strip(), type_.strip().lower() or "concept", description)).lastrowid
    else:
        entity_id = row[0]
    conn.execute("INSERT INTO entity_mentions (entity_id, chunk_id, origin, type, description) VALUES (?,?,?,?,?)",
                 (entity_id, chunk_id, origin, type_.strip().lower() or "concept", description.strip()))
    return entity_id


def upsert_relation(conn: StoreConnection, source_id: int, target_id: int, description: str,
                    keywords: Sequence[str], weight: float, *, chunk_id: int | None, origin: str) -> int:
    row = conn.execute("SELECT id FROM relations WHERE source_id = ? AND target_id = ?",
                       (source_id, target_id)).fetchone()
    if row is None:
        relation_id = conn.execute(
            "INSERT INTO relations (source_id, target_id, description, keywords, weight) VALUES (?,?,?,?,?)",
            (source_id, target_id, description, ", ".join(keywords), weight)).lastrowid
    else:
        relation_id = row[0]
    conn.execute("INSERT INTO relation_mentions (relation_id, chunk_id, origin, description, keywords, weight) "
                 "VALUES (?,?,?,?,?,?)", (relation_id, chunk_id, origin, description.strip(), ", ".join(keywords),
                                           float(weight)))
    return relation_id


def affected_by_chunks(conn: StoreConnection, chunk_sql: str, params: Sequence[Any]) -> tuple[set[int], set[int]]:
    """Entities and relations with a mention in the chunks `chunk_sql` selects (before those chunks go)."""
    entities = {row[0] for row in conn.execute(
        f"SELECT DISTINCT entity_id FROM entity_mentions WHERE chunk_id IN ({chunk_sql})", params)}
    relations = {row[0] for row in conn.execute(
        f"SELECT DISTINCT relation_id FROM relation_mentions WHERE chunk_id IN ({chunk_sql})", params)}
    return entities, relations


def refresh(conn: StoreConnection, entity_ids: Iterable[int], relation_ids: Iterable[int], *,
            embed: Callable[[list[str]], np.ndarray], description_limit: int,
            summarize: Callable[[str, list[str], int], str] | None, outbox: bool = False) -> bool:
    """Drop facts that lost every source, recompute the merged fields of the rest and re-embed entities.

    Returns whether anything in the graph changed. Runs inside the caller's transaction.
    """
    entity_ids, relation_ids = sorted(set(entity_ids)), sorted(set(relation_ids))
    if not entity_ids and not relation_ids:
        return False
    if outbox:  # the external graph database gets these entities' new state (or their removal) after the commit
        for chunk in _batches(entity_ids):
            marks = ",".join("?" * len(chunk))
            conn.execute(f"INSERT OR IGNORE INTO graph_outbox (key) SELECT key FROM entities WHERE id IN ({marks})",
                         chunk)
    for chunk in _batches(relation_ids):
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM relations WHERE id IN ({marks}) AND NOT EXISTS "
                     "(SELECT 1 FROM relation_mentions m WHERE m.relation_id = relations.id)", chunk)
    for chunk in _batches(entity_ids):
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM entities WHERE id IN ({marks}) AND NOT EXISTS "
                     "(SELECT 1 FROM entity_mentions m WHERE m.entity_id = entities.id)", chunk)
    texts: list[str] = []
    ids: list[int] = []
    for entity_id in entity_ids:
        row = conn.execute("SELECT name FROM entities WHERE id = ?", (entity_id,)).fetchone()
        if row is None:
            continue
        mentions = conn.execute("SELECT type, description FROM entity_mentions WHERE entity_id = ? ORDER BY rowid",
                                (entity_id,)).fetchall()
        type_ = Counter(t for t, _ in mentions if t).most_common(1)
        description = _merge(row[0], [d for _, d in mentions], description_limit, summarize)
        conn.execute("UPDATE entities SET type = ?, description = ? WHERE id = ?",
                     (type_[0][0] if type_ else "concept", description, entity_id))
        ids.append(entity_id)
        texts.append(f"{row[0]} ({type_[0][0] if type_ else 'concept'}): {description}")
    if texts:
        vectors = embed(texts)
        conn.executemany("UPDATE entities SET vector = ? WHERE id = ?",
                         [(to_blob(vectors[i]), entity_id) for i, entity_id in enumerate(ids)])
    for relation_id in relation_ids:
        mentions = conn.execute("SELECT description, keywords, weight FROM relation_mentions WHERE relation_id = ? "
                                "ORDER BY rowid", (relation_id,)).fetchall()
        if not mentions:
            continue
        keywords = list(dict.fromkeys(k.strip() for _, ks, _ in mentions for k in ks.split(",") if k.strip()))
        names = conn.execute("SELECT s.name, t.name FROM relations r JOIN entities s ON s.id = r.source_id "
                             "JOIN entities t ON t.id = r.target_id WHERE r.id = ?", (relation_id,)).fetchone()
        label = f"{names[0]} -> {names[1]}" if names else str(relation_id)
        conn.execute("UPDATE relations SET description = ?, keywords = ?, weight = ? WHERE id = ?",
                     (_merge(label, [d for d, _, _ in mentions], description_limit, summarize),
                      ", ".join(keywords), sum(w for _, _, w in mentions), relation_id))
    bump(conn, "graph_revision")
    return True


def _merge(name: str, descriptions: list[str], limit: int, summarize: Callable[[str, list[str], int], str] | None,
           ) -> str:
    distinct = list(dict.fromkeys(d.strip() for d in descriptions if d and d.strip()))
    joined = " ".join(distinct)
    if len(joined) <= limit:
        return joined
    if summarize is not None:
        return summarize(name, distinct, limit)
    kept: list[str] = []
    size = 0
    for description in distinct:  # whole descriptions, oldest first, up to the limit
        if size + len(description) > limit and kept:
            break
        kept.append(description)
        size += len(description) + 1
    return " ".join(kept)


def _batches(ids: Sequence[int], size: int = 500) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


# --- communities -----------------------------------------------------------------------------------------------

def ensure_communities(conn: StoreConnection) -> None:
    """Recompute communities when the graph changed since they were last computed (reports come later)."""
    with conn.lock:
        revision = get_meta(conn, "graph_revision", "0")
        if get_meta(conn, "communities_revision") == revision:
            return
    import networkx as nx

    graph = nx.Graph()
    with conn.lock:
        graph.add_nodes_from(row[0] for row in conn.execute("SELECT id FROM entities"))
        for source, target, weight in conn.execute("SELECT source_id, target_id, weight FROM relations"):
            if source != target:
                previous = graph.get_edge_data(source, target, {"weight": 0.0})["weight"]
                graph.add_edge(source, target, weight=previous + max(float(weight), 0.1))
    levels: list[list[set[int]]] = []
    if graph.number_of_edges():
        partitions = list(nx.community.louvain_partitions(graph, weight="weight", seed=7))
        levels = [[set(c) for c in partition if len(c) > 1] for partition in reversed(partitions)]
    from partyflow.store.sqlite import transaction

    with transaction(conn):
        conn.execute("DELETE FROM communities")
        previous_level: list[tuple[int, set[int]]] = []
        for level, communities in enumerate(levels):
            current: list[tuple[int, set[int]]] = []
            for members in sorted(communities, key=lambda c: (-len(c), min(c))):
                parent = next((cid for cid, pm in previous_level if members <= pm), None)
                cid = conn.execute("INSERT INTO communities (level, parent, members) VALUES (?, ?, ?)",
                                   (level, parent, json.dumps(sorted(members)))).lastrowid
                current.append((cid, members))
            previous_level = current
        set_meta(conn, "communities_revision", revision or "0")


def community_facts(conn: StoreConnection, members: Sequence[int], limit: int = 80) -> str:
    """A community's entities and the relations among them, as text for its report."""
    marks = ",".join("?" * len(members))
    lines = ["Entities:"]
    for name, type_, description in conn.execute(
            f"SELECT name, type, description FROM entities WHERE id IN ({marks}) ORDER BY id LIMIT ?",
            [*members, limit]):
        lines.append(f"- {name} ({type_}): {description}")
    lines.append("Relations:")
    for source, target, description in conn.execute(
            f"SELECT s.name, t.name, r.description FROM relations r JOIN entities s ON s.id = r.source_id "
            f"JOIN entities t ON t.id = r.target_id WHERE r.source_id IN ({marks}) AND r.target_id IN ({marks}) "
            "ORDER BY r.weight DESC, r.id LIMIT ?", [*members, *members, limit]):
        lines.append(f"- {source} -> {target}: {description}")
    return "\n".join(lines)
