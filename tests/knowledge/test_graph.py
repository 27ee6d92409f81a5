"""GraphRAG on a real SQLite file with a scripted OpenAI-compatible model on loopback: extraction through the llm
layer with structured output, its cache, provenance-driven updates, entity resolution, communities and their
lazily written reports, the graph modes, and graph import/export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.knowledge.conftest import configure_llm
from tests.support.knowledge_server import KnowledgeServer

from partyflow.config import Home
from partyflow.knowledge import KBConfig, KnowledgeBase, KnowledgeError


def _corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "org.md").write_text(
        "# Organisation\n\nMaria Lopez heads Finance at Acme Corp.\n\n"
        "Finance approves every Travel Request above the limit.\n", encoding="utf-8")
    (folder / "people.md").write_text(
        "# People\n\nOmar Haddad works with Maria Lopez on the Budget Review.\n\n"
        "The Acme Corp. office is in Lisbon.\n", encoding="utf-8")
    (folder / "other.md").write_text("# Other\n\nThe Orchid Project is run by Ines Duarte in Porto.\n",
                                     encoding="utf-8")
    return folder


def _kb(home: Home, server: KnowledgeServer, **options) -> KnowledgeBase:
    name = configure_llm(home, server.url)
    return KnowledgeBase.create(home, "g", KBConfig(graph=True, llm=name, chunk_tokens=64, overlap_tokens=0,
                                                    **options))


def test_extraction_builds_a_resolved_graph_with_provenance(home: Home, tmp_path: Path, kserver) -> None:
    with _kb(home, kserver) as kb:
        report = kb.ingest([_corpus(tmp_path / "docs")])
        assert report.failed == [] and report.llm["llm_calls"] == report.chunks == kserver.calls["extract"]
        extraction = next(r for r in kserver.requests if r.path == "/v1/chat/completions")
        assert extraction.body["response_format"]["type"] == "json_schema"  # structured output, not a regex
        names = {row[0] for row in kb.conn.execute("SELECT name FROM entities")}
        assert {"Maria Lopez", "Finance", "Omar Haddad", "Lisbon"} <= names
        # "Acme Corp" and "The Acme Corp." are one entity, mentioned by two documents
        acme = kb.conn.execute("SELECT id FROM entities WHERE key = 'acme corp'").fetchall()
        assert len(acme) == 1
        sources = kb.conn.execute("SELECT COUNT(DISTINCT c.doc_id) FROM entity_mentions m JOIN chunks c "
                                  "ON c.id = m.chunk_id WHERE m.entity_id = ?", acme[0]).fetchone()[0]
        assert sources == 2
        result = kb.search("What does Maria Lopez head?", mode="local", top_k=3)
        assert result.entities[0]["name"] == "Maria Lopez"
        assert any(r["source"] == "Maria Lopez" and r["target"] == "Finance" for r in result.relations)
        assert Path(result.chunks[0].path).name == "org.md"
        assert "Relations:" in result.context()


def test_reindexing_unchanged_text_costs_no_llm_call(home: Home, tmp_path: Path, kserver) -> None:
    folder = _corpus(tmp_path / "docs")
    with _kb(home, kserver) as kb:
        kb.ingest([folder])
        calls = sum(kserver.calls.values())
        assert kb.ingest([folder]).llm.get("llm_calls", 0) == 0  # unchanged files: skipped by hash
        forced = kb.ingest([folder], force=True)  # re-index everything: extractions come from the cache
        assert sum(kserver.calls.values()) == calls and forced.llm["cached_extractions"] == forced.chunks
        (folder / "other.md").write_text("# Other\n\nThe Orchid Project is run by Ines Duarte in Porto.\n\n"
                                         "Ines Duarte reports to Omar Haddad.\n", encoding="utf-8")
        kb.ingest([folder])
        assert kserver.calls["extract"] == calls + 1  # only the new chunk is extracted


def test_changed_and_deleted_documents_take_their_graph_facts_with_them(home: Home, tmp_path: Path,
                                                                        kserver) -> None:
    folder = _corpus(tmp_path / "docs")
    with _kb(home, kserver) as kb:
        kb.ingest([folder])
        keys = {row[0] for row in kb.conn.execute("SELECT key FROM entities")}
        assert {"orchid project", "ines duarte", "porto", "acme corp"} <= keys
        (folder / "other.md").unlink()
        (folder / "people.md").write_text("# People\n\nOmar Haddad works with Maria Lopez.\n", encoding="utf-8")
        report = kb.ingest([folder])
        assert [Path(p).name for p in report.removed] == ["other.md"]
        keys = {row[0] for row in kb.conn.execute("SELECT key FROM entities")}
        assert not {"orchid project", "ines duarte", "porto", "lisbon", "budget review"} & keys
        assert "acme corp" in keys  # still stated by org.md
        description = kb.conn.execute("SELECT description FROM entities WHERE key = 'acme corp'").fetchone()[0]
        assert "Lisbon" not in description  # the removed sentence no longer describes it
        orphans = kb.conn.execute("SELECT COUNT(*) FROM relations r WHERE NOT EXISTS "
                                  "(SELECT 1 FROM relation_mentions m WHERE m.relation_id = r.id)").fetchone()[0]
        assert orphans == 0


def test_malformed_extraction_json_fails_the_document_and_keeps_the_base_queryable(home: Home,
                                                                                   tmp_path: Path) -> None:
    folder = _corpus(tmp_path / "docs")
    with KnowledgeServer() as good:
        with _kb(home, good) as kb:
            kb.ingest([folder / "org.md"])
    with KnowledgeServer(malformed=True) as bad:
        configure_llm(home, bad.url)
        with KnowledgeBase.open(home, "g") as kb:
            before = kb.info()
            report = kb.ingest([folder / "people.md"])
            assert "reply is not the JSON asked for" in report.failed[0]["error"]
            assert bad.calls["extract"] == 2  # one retry, then a clear error
            after = kb.info()
            assert (after["documents"], after["chunks"], after["entities"]) == (
                before["documents"], before["chunks"], before["entities"])
            assert kb.search("Maria Lopez", mode="mix").chunks


def test_gleaning_asks_again_for_missed_entities(home: Home, tmp_path: Path, kserver) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("Maria Lopez heads Finance.", encoding="utf-8")
    with _kb(home, kserver, gleaning=1) as kb:
        kb.ingest([folder])
    assert kserver.calls["extract"] == 1 and kserver.calls["glean"] == 1


def test_global_mode_writes_community_reports_when_first_needed(home: Home, tmp_path: Path, kserver) -> None:
    with _kb(home, kserver) as kb:
        kb.ingest([_corpus(tmp_path / "docs")])
        assert kserver.calls["report"] == 0  # nothing summarised at ingest
        result = kb.search("What is the Orchid Project?", mode="global", top_k=3)
        assert result.reports and kserver.calls["report"] == len(result.reports)
        assert any("Orchid" in r["title"] or "Ines" in r["title"] for r in result.reports)
        assert result.chunks
        kb.search("What is the Orchid Project?", mode="global", top_k=3)
        assert kserver.calls["report"] == len(result.reports)  # stored, not asked again
        mixed = kb.search("Who works with Maria Lopez?", mode="mix", top_k=3)
        assert Path(mixed.chunks[0].path).name == "people.md"
        answered = kb.search("Who works with Maria Lopez?", mode="hybrid", answer=True)
        assert answered.answer.startswith("According to [1]")


def test_graph_export_and_import_round_trip_json_and_csv(home: Home, tmp_path: Path, kserver) -> None:
    with _kb(home, kserver) as kb:
        kb.ingest([_corpus(tmp_path / "docs")])
        exported = json.loads(kb.export_graph(tmp_path / "graph.json")[0].read_text(encoding="utf-8"))
        kb.export_graph(tmp_path / "csv", "csv")
        counts = (len(exported["entities"]), len(exported["relations"]))
    for source in (tmp_path / "graph.json", tmp_path / "csv"):
        target = KnowledgeBase.create(home, f"copy-{source.name.replace('.', '-')}")
        with target:
            assert target.import_graph(source) == {"entities": counts[0], "relations": counts[1]}
            target.import_graph(source)  # importing the same file again replaces, never doubles
            info = target.info()
            assert (info["entities"], info["relations"]) == counts
            assert target.search("Maria Lopez", mode="local").entities[0]["name"] == "Maria Lopez"


def test_bad_graph_files_are_refused_whole(home: Home, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"entities": [{"name": "A"}], "relations": [{"source": "A"}]}',
                                       encoding="utf-8")
    (tmp_path / "rels.csv").write_text("source,target,weight\nA,B,heavy\n", encoding="utf-8")
    with KnowledgeBase.create(home, "kb") as kb:
        with pytest.raises(KnowledgeError, match=r"relations\[0\]: missing target"):
            kb.import_graph(tmp_path / "bad.json")
        with pytest.raises(KnowledgeError, match="weight 'heavy' is not a number"):
            kb.import_graph(tmp_path / "rels.csv")
        assert kb.info()["entities"] == 0
