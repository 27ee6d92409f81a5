"""`partyflow kb ...` through the real command-line app, JSON output included."""

from __future__ import annotations

import json
from pathlib import Path

from tests.knowledge import files
from tests.knowledge.conftest import configure_llm
from typer.testing import CliRunner

from partyflow.cli.main import app
from partyflow.config import Home


def _run(home: Home, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--home", str(home.root), "kb", *args])
    return result.exit_code, result.stdout, result.stderr


def test_create_ingest_query_info_list_delete(home: Home, tmp_path: Path) -> None:
    folder = files.corpus(tmp_path / "docs")
    (folder / "empty.txt").write_bytes(b"")
    assert _run(home, "create", "docs", "--json")[0] == 0
    code, out, _ = _run(home, "ingest", "docs", str(folder), "--json")
    report = json.loads(out)
    assert code == 1 and len(report["added"]) == 9 and report["failed"][0]["path"].endswith("empty.txt")
    code, out, _ = _run(home, "query", "docs", "Who manages the Berlin office?", "--json", "--top-k", "2")
    result = json.loads(out)
    assert code == 0 and result["chunks"][0]["path"].endswith("offices.csv") and result["chunks"][0]["n"] == 1
    code, out, _ = _run(home, "query", "docs", "helpdesk phone number", "--mode", "keyword")
    assert code == 0 and "[1] readme.txt" in out
    code, out, _ = _run(home, "ingest", "docs", str(folder))
    assert code == 1 and "unchanged 9" in out
    info = json.loads(_run(home, "info", "docs", "--json", "--documents")[1])
    assert info["documents"] == 9 and len(info["document_list"]) == 9
    assert [row["name"] for row in json.loads(_run(home, "list", "--json")[1])] == ["docs"]
    assert _run(home, "delete", "docs", "--yes")[0] == 0
    assert json.loads(_run(home, "list", "--json")[1]) == []


def test_graph_commands_and_errors(home: Home, tmp_path: Path, kserver) -> None:
    provider = configure_llm(home, kserver.url)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("Maria Lopez heads Finance at Acme Corp.", encoding="utf-8")
    code, _, err = _run(home, "create", "g", "--graph")
    assert code == 2 and "--graph needs --llm" in err
    assert _run(home, "create", "g", "--graph", "--llm", provider)[0] == 0
    assert _run(home, "ingest", "g", str(folder))[0] == 0
    code, out, _ = _run(home, "query", "g", "Maria Lopez", "--mode", "local", "--json")
    assert code == 0 and json.loads(out)["entities"][0]["name"] == "Maria Lopez"
    code, out, _ = _run(home, "export", "g", str(tmp_path / "g.json"), "--json")
    assert code == 0 and json.loads((tmp_path / "g.json").read_text())["relations"]
    assert _run(home, "create", "copy")[0] == 0
    code, out, _ = _run(home, "import", "copy", str(tmp_path / "g.json"), "--json")
    assert code == 0 and json.loads(out)["entities"] == 3
    code, _, err = _run(home, "query", "missing", "x")
    assert code == 2 and "no such knowledge base" in err
    code, _, err = _run(home, "query", "g", "x", "--mode", "fuzzy")
    assert code == 2 and "unknown mode 'fuzzy'" in err
    code, _, err = _run(home, "import", "copy", str(tmp_path / "nothing.json"))
    assert code == 2 and "no such file" in err
