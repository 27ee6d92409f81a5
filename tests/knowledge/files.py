"""Real documents of every supported format, written with the libraries users' files come from."""

from __future__ import annotations

import io
import json
from pathlib import Path


def pdf(path: Path, pages: list[str], *, password: str | None = None) -> Path:
    from fpdf import FPDF

    document = FPDF()
    document.set_font("helvetica", size=12)
    for text in pages:
        document.add_page()
        document.multi_cell(0, 8, text)
    data = bytes(document.output())
    if password is not None:
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
        writer.encrypt(password)
        buffer = io.BytesIO()
        writer.write(buffer)
        data = buffer.getvalue()
    path.write_bytes(data)
    return path


def docx(path: Path, title: str, paragraphs: list[str], table: list[list[str]] | None = None) -> Path:
    import docx as python_docx

    document = python_docx.Document()
    document.add_heading(title, level=1)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    document.save(str(path))
    return path


def pptx(path: Path, slides: list[tuple[str, str]]) -> Path:
    from pptx import Presentation

    deck = Presentation()
    for title, body in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(str(path))
    return path


def xlsx(path: Path, sheet: str, rows: list[list[object]]) -> Path:
    from openpyxl import Workbook

    workbook = Workbook()
    worksheet = workbook.active
    worksheet.title = sheet
    for row in rows:
        worksheet.append(row)
    workbook.save(str(path))
    return path


def corpus(folder: Path) -> Path:
    """One file of each format, each holding one fact a test can ask about."""
    folder.mkdir(parents=True, exist_ok=True)
    pdf(folder / "policy.pdf", ["Travel Policy. Travel over 5000 EUR needs approval from Maria Lopez.",
                                "Page two mentions the Lisbon office."])
    docx(folder / "handbook.docx", "Security", ["Lost badges are reported to Omar Haddad at the security desk."],
         table=[["Room", "Owner"], ["C-101", "Facilities"]])
    pptx(folder / "roadmap.pptx", [("Roadmap", "Project Falcon launches in March."), ("Team", "Ines Duarte leads it.")])
    xlsx(folder / "budget.xlsx", "Budget", [["Department", "Budget"], ["Research", 120000], ["Sales", 80000]])
    (folder / "offices.csv").write_text("city,manager\nLisbon,Ana Costa\nBerlin,Jonas Weber\n", encoding="utf-8")
    (folder / "faq.html").write_text("<html><head><script>var x=1;</script></head><body><h1>FAQ</h1>"
                                     "<p>The cafeteria opens at 8am.</p><ul><li>Parking is free.</li></ul>"
                                     "</body></html>", encoding="utf-8")
    (folder / "notes.md").write_text("# Notes\n\n## Holidays\n\nEmployees get 25 vacation days per year.\n",
                                     encoding="utf-8")
    (folder / "readme.txt").write_text("The helpdesk phone number is 555-0199.\n", encoding="utf-8")
    (folder / "team.json").write_text(json.dumps({"team": {"lead": "Priya Nair", "size": 7}}), encoding="utf-8")
    return folder
