"""The knowledge node pack in real workflows on a real engine: documents in, cited answers out, and the search
tool in an Agent's hands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.agents.scripted import calls, text
from tests.knowledge import files
from tests.knowledge.conftest import configure_llm
from tests.support.providers import node

from partyflow import Engine
from partyflow.config import Home
from partyflow.engine.events import Event, Progress


@pytest.fixture
def engine(home: Home) -> Iterator[Engine]:
    files.corpus(home.input / "docs")
    engine = Engine(home=home.root, builtin_packs=("core", "llm", "agents", "knowledge"))
    assert all(r.ok for r in engine.pack_results), [r.error for r in engine.pack_results]
    yield engine
    engine.close()


def test_load_split_embed_nodes(engine: Engine) -> None:
    result = engine.run({
        "load": node("KBLoadDocuments", path="docs"),
        "split": node("KBSplitText", documents=["load", 0], chunk_tokens=64, overlap_tokens=8),
        "embed": node("KBEmbed", embedder="hash:32", chunks=["split", 0]),
    }, outputs=["embed", "load"])
    assert result.ok, result.error
    documents = result.output("load")
    assert len(documents) == 9 and result.output("load", 1) == []
    chunks = result.output("split")
    assert {Path(c["source"]).name for c in chunks} == {Path(d["path"]).name for d in documents}
    vectors = result.output("embed")
    assert len(vectors) == len(chunks) and len(vectors[0]) == 32


def test_ingest_and_query_a_folder_then_documents(engine: Engine, home: Home) -> None:
    prompt = {
        "kb": node("KnowledgeBase", name="docs", embedder="hash", chunk_tokens=128, overlap_tokens=16),
        "ingest": node("KBIngest", knowledge_base=["kb", 0], folder="docs"),
        "query": node("KBQuery", knowledge_base=["ingest", 0], query="Who manages the Berlin office?",
                      mode="hybrid", top_k=3),
    }
    events: list[Event] = []
    result = engine.run(prompt, outputs=["query"], sinks=[events.append])
    assert result.ok, result.error
    progress = [(e.value, e.max) for e in events if isinstance(e, Progress) and e.node == "ingest"]
    assert progress[-1] == (9, 9) and len(progress) >= 9  # the editor's progress bar, file by file
    assert len(result.output("ingest", 1)["added"]) == 9
    assert result.output("query").startswith("[1] offices.csv")
    assert result.output("query", 1)["chunks"][0]["path"].endswith("offices.csv")
    again = engine.run(prompt, outputs=["query"])  # the Knowledge Base and Query nodes rerun: the knowledge base changes outside
    assert again.ok and len(again.output("ingest", 1)["unchanged"]) == 9
    loaded = engine.run({
        "kb": node("KnowledgeBase", name="other"),
        "load": node("KBLoadDocuments", path="docs/notes.md"),
        "ingest": node("KBIngest", knowledge_base=["kb", 0], documents=["load", 0]),
        "query": node("KBQuery", knowledge_base=["ingest", 0], query="vacation days", mode="keyword", top_k=1),
    }, outputs=["query"])
    assert loaded.ok, loaded.error
    assert "25 vacation days" in loaded.output("query")


def test_paths_outside_the_home_and_bad_modes_are_refused(engine: Engine) -> None:
    escaped = engine.run({"load": node("KBLoadDocuments", path="../../etc")}, outputs=["load"])
    assert not escaped.ok and "leaves the allowed directory" in str(escaped.error)
    graphless = engine.run({
        "kb": node("KnowledgeBase", name="plain"),
        "query": node("KBQuery", knowledge_base=["kb", 0], query="x", mode="local", top_k=3),
    }, outputs=["query"])
    assert not graphless.ok and "needs a knowledge graph" in str(graphless.error)


def test_graph_nodes_and_the_search_tool_in_an_agent(engine: Engine, home: Home, kserver) -> None:
    provider = configure_llm(home, kserver.url)
    (home.input / "graph_docs").mkdir()
    (home.input / "graph_docs" / "org.md").write_text("Maria Lopez heads Finance at Acme Corp.", encoding="utf-8")
    result = engine.run({
        "kb": node("KnowledgeBase", name="g", graph=True, llm=provider),
        "ingest": node("KBIngest", knowledge_base=["kb", 0], folder="graph_docs"),
        "extract": node("KBExtractGraph", knowledge_base=["ingest", 0], text="Omar Haddad visits Porto."),
        "export": node("KBExportGraph", knowledge_base=["ingest", 0], filename="g.json", format="json"),
    }, outputs=["extract", "export"])
    assert result.ok, result.error
    assert {e["name"] for e in result.output("extract")["entities"]} == {"Omar Haddad", "Porto"}
    exported = json.loads((home.output / "g.json").read_text(encoding="utf-8"))
    assert {e["name"] for e in exported["entities"]} == {"Maria Lopez", "Finance", "Acme Corp"}
    (home.input / "g.json").write_text(json.dumps(exported), encoding="utf-8")
    imported = engine.run({"kb": node("KnowledgeBase", name="copy"),
                           "import": node("KBImportGraph", knowledge_base=["kb", 0], path="g.json")},
                          outputs=["import"])
    assert imported.ok and imported.output("import", 1) == {"entities": 3, "relations": 2}

    kserver.script(calls(("search_knowledge", {"query": "Who heads Finance?"})), text("Maria Lopez [1]."))
    agent = engine.run({
        "model": node("APIModelLoader", provider=provider, model=""),
        "kb": node("KnowledgeBase", name="g"),
        "tool": node("KnowledgeSearchTool", knowledge_base=["kb", 0], mode="mix", top_k=3),
        "agent": node("Agent", model=["model", 0], system_prompt="Cite sources.", task="Who heads Finance?",
                      tools=["tool", 0]),
    }, outputs=["agent"])
    assert agent.ok, agent.error
    assert agent.output("agent") == "Maria Lopez [1]."
    tool_message = next(m for m in agent.output("agent", 4) if m["role"] == "tool")
    found = json.loads(tool_message["content"])
    assert found["results"][0]["source"].startswith("org.md") and found["facts"]
