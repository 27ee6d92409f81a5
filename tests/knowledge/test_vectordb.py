"""Qdrant as a knowledge base's vector index, through the official client. No Qdrant server installs here: the
client's embedded local mode (a real implementation of the same client API, storing in a folder) stands in."""

from __future__ import annotations

from pathlib import Path

import pytest

from partyflow.config import Home
from partyflow.knowledge import KBConfig, KnowledgeBase, KnowledgeError

pytest.importorskip("qdrant_client")


def test_chunks_are_indexed_searched_and_removed_in_qdrant(home: Home, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# Travel\n\nTravel over 5000 EUR needs the CFO's approval.", encoding="utf-8")
    (folder / "b.md").write_text("# Badges\n\nLost badges go to the security desk.", encoding="utf-8")
    store = f"qdrant+local://{tmp_path / 'qdrant'}#chunks"
    with KnowledgeBase.create(home, "q", KBConfig(vector_store=store)) as kb:
        kb.ingest([folder])
        hit = kb.search("travel approval", mode="naive", top_k=1).chunks[0]
        assert Path(hit.path).name == "a.md"
        assert kb.vector_db()._client.count("chunks").count == 2
        only_b = kb.search("travel approval", mode="naive", path_glob="b.md")
        assert [Path(c.path).name for c in only_b.chunks] == ["b.md"]
        (folder / "a.md").unlink()
        kb.ingest([folder])
        assert kb.vector_db()._client.count("chunks").count == 1
        assert Path(kb.search("travel approval", mode="hybrid").chunks[0].path).name == "b.md"
        assert kb.conn.execute("SELECT COUNT(*) FROM vector_outbox").fetchone()[0] == 0


def test_switching_to_qdrant_fills_it_from_the_stored_vectors(home: Home, tmp_path: Path) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("The helpdesk number is 555-0199.", encoding="utf-8")
    with KnowledgeBase.create(home, "q") as kb:
        kb.ingest([doc])
        kb.update_config(vector_store=f"qdrant+local://{tmp_path / 'qdrant'}#moved")
        assert kb.search("helpdesk number", mode="naive").chunks[0].text.startswith("The helpdesk")
        assert kb.vector_db()._client.count("moved").count == 1


def test_bad_vector_store_settings_are_refused(home: Home, tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match="vector store 'milvus://x' is not available"):
        KnowledgeBase.create(home, "bad", KBConfig(vector_store="milvus://x"))
    unreachable = "qdrant://127.0.0.1:9/none"  # the discard port: nothing answers
    doc = tmp_path / "a.txt"
    doc.write_text("Some text.", encoding="utf-8")
    with KnowledgeBase.create(home, "far", KBConfig(vector_store=unreachable)) as kb:
        with pytest.raises(KnowledgeError, match=r"vector_store qdrant://127.0.0.1:9/none: the vector database is "
                                                 r"unreachable"):
            kb.ingest([doc])
        assert kb.info()["documents"] == 0
        assert kb.search("text", mode="keyword").chunks == []
