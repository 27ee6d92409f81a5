"""Export and import of a knowledge base's graph as JSON or CSV, so existing knowledge-graph files can be loaded
and a graph can move to other tools.

JSON: `{"entities": [{"name", "type", "description"}], "relations": [{"source", "target", "description",
"keywords", "weight"}]}`. CSV: a folder with `entities.csv` (name,type,description) and `relations.csv`
(source,target,description,keywords,weight); `relations.csv` alone is enough (endpoints become entities).

Imported facts are tagged with their file (`import:<name>`), so importing the same file again replaces what it
brought instead of doubling it; a bad row fails the whole import (one transaction) with the file and row named.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from partyflow.knowledge import graph as graph_ops
from partyflow.knowledge.errors import KnowledgeError
from partyflow.store.sqlite import transaction

ENTITY_FIELDS = ("name", "type", "description")
RELATION_FIELDS = ("source", "target", "description", "keywords", "weight")


def graph_data(kb: Any) -> dict[str, list[dict[str, Any]]]:
    with transaction(kb.conn, write=False):
        entities = [dict(zip(ENTITY_FIELDS, row, strict=True)) for row in kb.conn.execute(
            "SELECT name, type, description FROM entities ORDER BY name")]
        relations = [dict(zip(RELATION_FIELDS, row, strict=True)) for row in kb.conn.execute(
            "SELECT s.name, t.name, r.description, r.keywords, r.weight FROM relations r "
            "JOIN entities s ON s.id = r.source_id JOIN entities t ON t.id = r.target_id ORDER BY s.name, t.name")]
    return {"entities": entities, "relations": relations}


def export_graph(kb: Any, target: str | Path, fmt: str = "json") -> list[Path]:
    """Write the graph; returns the files written (one JSON file, or a folder's two CSV files)."""
    data = graph_data(kb)
    target = Path(target)
    if fmt == "json":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        return [target]
    if fmt == "csv":
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for name, fields in (("entities", ENTITY_FIELDS), ("relations", RELATION_FIELDS)):
            path = target / f"{name}.csv"
            with path.open("w", encoding="utf-8", newline="") as stream:
                writer = csv.DictWriter(stream, fieldnames=fields)
                writer.writeheader()
                writer.writerows(data[name])
            written.append(path)
        return written
    raise KnowledgeError(f"unknown format {fmt!r}", where="format", hint="use json or csv")


def read_graph(source: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Entities and relations from a JSON file, a CSV folder, or one relations/entities CSV file."""
    path = Path(source)
    if path.is_dir():
        entities_file, relations_file = path / "entities.csv", path / "relations.csv"
        if not entities_file.exists() and not relations_file.exists():
            raise KnowledgeError("the folder has neither entities.csv nor relations.csv", where=str(path))
        return (_csv_rows(entities_file, ("name",)) if entities_file.exists() else [],
                _csv_rows(relations_file, ("source", "target")) if relations_file.exists() else [])
    if not path.is_file():
        raise KnowledgeError("no such file or folder", where=str(path))
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as stream:
            header = next(csv.reader(stream), [])
        if {"source", "target"} <= set(header):
            return [], _csv_rows(path, ("source", "target"))
        return _csv_rows(path, ("name",)), []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KnowledgeError(f"not valid JSON ({exc})", where=str(path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("entities", []), list) \
            or not isinstance(data.get("relations", []), list):
        raise KnowledgeError('expected {"entities": [...], "relations": [...]}', where=str(path))
    entities = data.get("entities", [])
    relations = data.get("relations", [])
    for index, row in enumerate(entities):
        _check(row, ("name",), f"{path}: entities[{index}]")
    for index, row in enumerate(relations):
        _check(row, ("source", "target"), f"{path}: relations[{index}]")
    return entities, relations


def _csv_rows(path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8", newline="") as stream:
            rows = list(csv.DictReader(stream))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise KnowledgeError(f"cannot read the CSV ({exc})", where=str(path)) from None
    for index, row in enumerate(rows, start=2):
        _check(row, required, f"{path}: row {index}")
    return rows


def _check(row: Any, required: tuple[str, ...], where: str) -> None:
    if not isinstance(row, dict):
        raise KnowledgeError("expected an object", where=where)
    missing = [name for name in required if not str(row.get(name) or "").strip()]
    if missing:
        raise KnowledgeError(f"missing {', '.join(missing)}", where=where)


def import_graph(kb: Any, source: str | Path) -> dict[str, int]:
    """Merge a graph file into the knowledge base (replacing what an earlier import of the same file brought)."""
    entities, relations = read_graph(source)
    origin = f"import:{Path(source).resolve()}"
    conn = kb.conn
    with transaction(conn):
        affected_entities = {row[0] for row in conn.execute(
            "SELECT entity_id FROM entity_mentions WHERE origin = ?", (origin,))}
        affected_relations = {row[0] for row in conn.execute(
            "SELECT relation_id FROM relation_mentions WHERE origin = ?", (origin,))}
        conn.execute("DELETE FROM entity_mentions WHERE origin = ?", (origin,))
        conn.execute("DELETE FROM relation_mentions WHERE origin = ?", (origin,))
        ids: dict[str, int] = {}
        for row in entities:
            entity_id = graph_ops.upsert_entity(conn, str(row["name"]), str(row.get("type") or "concept"),
                                                str(row.get("description") or ""), chunk_id=None, origin=origin)
            if entity_id is not None:
                ids[graph_ops.entity_key(str(row["name"]))] = entity_id
                affected_entities.add(entity_id)
        for index, row in enumerate(relations):
            endpoints = []
            for name in (str(row["source"]), str(row["target"])):
                key = graph_ops.entity_key(name)
                if key not in ids:
                    entity_id = graph_ops.upsert_entity(conn, name, "concept", "", chunk_id=None, origin=origin)
                    if entity_id is None:
                        raise KnowledgeError(f"relation endpoint {name!r} is not a name", where=f"{source}: relation {index}")
                    ids[key] = entity_id
                    affected_entities.add(entity_id)
                endpoints.append(ids[key])
            if endpoints[0] == endpoints[1]:
                continue
            keywords = row.get("keywords") or []
            if isinstance(keywords, str):
                keywords = [k.strip() for k in keywords.split(",") if k.strip()]
            try:
                weight = float(row.get("weight") or 1.0)
            except (TypeError, ValueError):
                raise KnowledgeError(f"weight {row.get('weight')!r} is not a number",
                                     where=f"{source}: relation {index}") from None
            affected_relations.add(graph_ops.upsert_relation(
                conn, endpoints[0], endpoints[1], str(row.get("description") or ""), keywords, weight,
                chunk_id=None, origin=origin))
        kb.refresh_graph(affected_entities, affected_relations)
    return {"entities": len(entities), "relations": len(relations)}
