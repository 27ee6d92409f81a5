"""Embeddings through routers (issue 18): a router name works wherever an embeddings provider does, fails over like
chat, and every attempt is in the usage ledger; routers that cannot embed are refused, naming the member."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.openai_server import OpenAIServer, Reply
from typer.testing import CliRunner

from partyflow.cli.main import app
from partyflow.config import Home
from partyflow.knowledge import KBConfig, KnowledgeBase, KnowledgeError
from partyflow.llm.config import ProvidersConfig
from partyflow.llm.errors import LLMError, RouterExhaustedError
from partyflow.llm.providers import create
from partyflow.llm.usage.ledger import UsageLedger


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[OpenAIServer, OpenAIServer]]:
    with OpenAIServer() as first, OpenAIServer() as second:
        yield first, second


@pytest.fixture
def servers(pair: tuple[OpenAIServer, OpenAIServer]) -> tuple[OpenAIServer, OpenAIServer]:
    for server in pair:
        server.reset()
    return pair


def provider(name: str, url: str, *, embedding_model: str = "tiny-embed", kind: str = "openai_compat") -> str:
    lines = [f"[providers.{name}]", f'type = "{kind}"']
    if kind == "openai_compat":
        lines += [f'base_url = "{url}"', 'model = "tiny-chat"', "max_retries = 0", "timeout = 10",
                  f'embedding_model = "{embedding_model}"', "price_input_per_1k = 0.5"]
    else:
        lines += ['path = "llm/nowhere"']
    return "\n".join(lines) + "\n"


def configure(home: Home, *tables: str) -> Home:
    home.config_file.write_text("\n".join(tables), encoding="utf-8")
    return home


def embeddings_to(server: OpenAIServer) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/embeddings"))


def test_a_knowledge_base_ingests_through_a_router_that_fails_over(
        home: Home, tmp_path: Path, servers: tuple[OpenAIServer, OpenAIServer]) -> None:
    first, second = servers
    configure(home, provider("a", first.url), provider("b", second.url),
              '[routers.embed]\nmembers = ["a", "b"]\n')
    first.script(Reply.error(500, "embedding backend down"))
    doc = tmp_path / "notes.txt"
    doc.write_text("The Berlin office is managed by Ada. The helpdesk answers on weekdays.", encoding="utf-8")
    with KnowledgeBase.create(home, "kb", KBConfig(embedder="provider:embed")) as kb:
        report = kb.ingest([doc])
        assert not report.failed and kb.info()["dimensions"] == 4
        assert kb.info()["config"]["embedder"] == "provider:embed"
        assert kb.search("Berlin office", mode="naive").chunks
    assert embeddings_to(first) >= 1 and embeddings_to(second) >= 1
    assert all(r.body["model"] == "tiny-embed" for r in [*first.requests, *second.requests])

    ledger = UsageLedger(home.state_db)
    try:
        rows = list(reversed(list(ledger.rows())))
    finally:
        ledger.close()
    assert [(r["provider"], r["outcome"]) for r in rows[:2]] == [("a", "error"), ("b", "ok")]
    assert all(r["router"] == "embed" and r["operation"] == "embeddings" and r["model"] == "tiny-embed"
               for r in rows)
    assert "500" in rows[0]["error"] and "embedding backend down" in rows[0]["error"]
    assert rows[1]["prompt_tokens"] > 0 and rows[1]["cost"] == pytest.approx(rows[1]["prompt_tokens"] * 0.5 / 1000)


def test_a_router_embeds_directly_and_reports_every_member_when_all_fail(
        servers: tuple[OpenAIServer, OpenAIServer]) -> None:
    first, second = servers
    config = ProvidersConfig.from_mapping({
        "providers": {name: {"type": "openai_compat", "base_url": s.url, "embedding_model": "tiny-embed",
                             "max_retries": 0} for name, s in (("a", first), ("b", second))},
        "routers": {"r": {"members": ["a", "b"]}}}, environ={})
    router = create("r", config)
    first.script(Reply.error(502, "bad gateway"))
    response = router.embed(["one", "two"], model="tiny-embed")
    assert response.provider == "b" and len(response.vectors) == 2
    first.script(Reply.error(503, "down"))
    second.script(Reply.error(500, "also down"))
    with pytest.raises(RouterExhaustedError) as caught:
        router.embed(["three"], model="tiny-embed")
    assert "(a: HTTP 503: the server failed: down; b: HTTP 500: the server failed: also down)" in str(caught.value)


def test_a_router_with_a_chat_only_member_is_refused_naming_it(
        home: Home, servers: tuple[OpenAIServer, OpenAIServer]) -> None:
    first, _ = servers
    configure(home, provider("a", first.url), provider("local", "", kind="transformers"),
              '[routers.mixed]\nmembers = ["a", "local"]\n')
    with pytest.raises(KnowledgeError, match="router 'mixed': member 'local' \\(type transformers\\) offers no "
                                             "embeddings"):
        KnowledgeBase.create(home, "kb", KBConfig(embedder="provider:mixed"))
    assert not KnowledgeBase.path_for(home, "kb").exists()  # nothing written
    result = CliRunner().invoke(app, ["--home", str(home.root), "kb", "create", "kb2", "--embedder",
                                      "provider:mixed", "--json"])
    assert result.exit_code != 0 and "member 'local'" in result.output and "Traceback" not in result.output
    # the router itself says the same when asked directly (a chat-only member is a mistake, not a failover)
    router = create("mixed", ProvidersConfig.load(home))
    first.script(Reply.error(500, "down"))
    with pytest.raises(LLMError, match="member 'local' offers no embeddings"):
        router.embed(["x"])


def test_members_with_different_embedding_models_are_refused(
        home: Home, servers: tuple[OpenAIServer, OpenAIServer]) -> None:
    first, second = servers
    configure(home, provider("a", first.url), provider("b", second.url, embedding_model="other-embed"),
              '[routers.r]\nmembers = ["a", "b"]\n')
    with pytest.raises(KnowledgeError, match="members embed with different models \\(a: tiny-embed, b: "
                                             "other-embed\\)"):
        KnowledgeBase.create(home, "kb", KBConfig(embedder="provider:r"))
    # naming the model makes them agree: every member is asked for it
    with KnowledgeBase.create(home, "kb", KBConfig(embedder="provider:r/shared-embed")) as kb:
        assert kb.embedder.key == "provider:r/shared-embed"


def test_models_usage_groups_by_operation(home: Home, tmp_path: Path,
                                          servers: tuple[OpenAIServer, OpenAIServer]) -> None:
    first, second = servers
    configure(home, provider("a", first.url), provider("b", second.url), '[routers.r]\nmembers = ["a", "b"]\n')
    doc = tmp_path / "d.txt"
    doc.write_text("Something to embed.", encoding="utf-8")
    with KnowledgeBase.create(home, "kb", KBConfig(embedder="provider:r")) as kb:
        kb.ingest([doc])
    result = CliRunner().invoke(app, ["--home", str(home.root), "models", "usage", "--by", "operation", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["rows"]
    assert [row["key"] for row in rows] == ["embeddings"]
