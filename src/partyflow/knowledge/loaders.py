"""Documents to Markdown-like text: headings stay headings and tables stay tables, so the chunker can follow the
structure. Each format uses a maintained library (pypdf, python-docx, python-pptx, openpyxl) or the standard
library (CSV, HTML, JSON, text); every failure is a `DocumentError` naming the file, so a folder ingest reports
the bad file and goes on with the rest.

Scanned PDFs (pages without a text layer) are reported as such: OCR is not done here.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NoReturn

from partyflow.knowledge.errors import DocumentError, MissingExtraError

MAX_FILE_BYTES = 50 * 1024 * 1024
"""Files above this are refused by default (a 'huge' file is usually a data dump, not a document)."""

TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".text", ".rst", ".log"})


@dataclass(frozen=True)
class Document:
    """A loaded file: its text (Markdown-like), where it came from and the hash of its bytes."""

    path: str
    text: str
    content_hash: str
    format: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadFailure:
    path: str
    message: str


def supported_suffixes() -> frozenset[str]:
    return frozenset(_LOADERS) | TEXT_SUFFIXES


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_bytes(path: str, data: bytes, *, max_bytes: int = MAX_FILE_BYTES) -> Document:
    """Convert one file's bytes; raises `DocumentError` naming `path` for anything that cannot be read."""
    suffix = Path(path).suffix.lower()
    if len(data) > max_bytes:
        _too_big(path, len(data), max_bytes)
    if not data.strip():
        raise DocumentError("the file is empty", where=path)
    if suffix in TEXT_SUFFIXES:
        loader: Callable[[bytes], str] = _text
    elif suffix in _LOADERS:
        loader = _LOADERS[suffix]
    else:
        raise DocumentError(f"unsupported file type {suffix or '(no extension)'!r}", where=path,
                            hint=f"supported: {', '.join(sorted(supported_suffixes()))}")
    try:
        text = loader(data)
    except DocumentError as exc:
        raise DocumentError(exc.message, where=path, hint=exc.hint) from None
    except MissingExtraError:
        raise
    except Exception as exc:  # the parsers raise many types for corrupt input; all mean the same to the user
        raise DocumentError(f"cannot read this {suffix} file ({type(exc).__name__}: {_short(exc)})", where=path,
                            hint="the file may be corrupt or not what its extension says") from None
    text = text.strip()
    if not text:
        raise DocumentError("no text could be extracted", where=path,
                            hint="a scanned PDF is read by OCR when tesseract-ocr is installed" if suffix == ".pdf" else None)
    return Document(path=path, text=text, content_hash=content_hash(data), format=suffix.lstrip("."))


def load_file(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> Document:
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > max_bytes:  # refuse before reading a huge file into memory
            _too_big(str(file), size, max_bytes)
        data = file.read_bytes()
    except OSError as exc:
        raise DocumentError(f"cannot read the file ({exc.strerror or exc})", where=str(file)) from None
    return load_bytes(str(file), data, max_bytes=max_bytes)


def _too_big(path: str, size: int, max_bytes: int) -> NoReturn:
    raise DocumentError(f"the file is {size / 1e6:.1f} MB, above the limit of {max_bytes / 1e6:.0f} MB",
                        where=path, hint="split it, or raise max_file_bytes")


def iter_files(root: str | Path) -> Iterator[Path]:
    """Files under `root` (or `root` itself), sorted, skipping hidden files and folders."""
    base = Path(root)
    if base.is_file():
        yield base
        return
    if not base.is_dir():
        raise DocumentError("no such file or folder", where=str(base))
    for file in sorted(base.rglob("*")):
        relative = file.relative_to(base)
        if any(part.startswith(".") for part in relative.parts) or not file.is_file():
            continue
        yield file


def load_folder(root: str | Path, *, max_bytes: int = MAX_FILE_BYTES,
                ) -> tuple[list[Document], list[LoadFailure]]:
    """Every readable file under `root`, and one failure per file that could not be read."""
    documents: list[Document] = []
    failures: list[LoadFailure] = []
    for file in iter_files(root):
        try:
            documents.append(load_file(file, max_bytes=max_bytes))
        except DocumentError as exc:
            failures.append(LoadFailure(str(file), exc.message if exc.hint is None else f"{exc.message} ({exc.hint})"))
    return documents, failures


# --- formats ---------------------------------------------------------------------------------------------------

def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text[:200]


def _decode(data: bytes) -> str:
    if b"\0" in data[:8192]:
        raise DocumentError("the file is binary, not text")
    for encoding in ("utf-8-sig", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")  # any byte sequence decodes; text files in legacy encodings stay readable


def _text(data: bytes) -> str:
    return _decode(data)


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(module) from None


def _pdf(data: bytes) -> str:
    pypdf = _require("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")  # PDFs with only an owner password open with an empty user password
        except Exception:  # noqa: BLE001 - unsupported encryption is the same answer
            opened = 0
        if not opened:
            raise DocumentError("the PDF is encrypted with a password", hint="save an unencrypted copy")
    pages = []
    for number, page in enumerate(reader.pages, start=1):
        text = (page.extract_text() or "").strip() or _ocr_page(page)
        if text:
            pages.append(f"<!-- page {number} -->\n{text}")
    return "\n\n".join(pages)


def _ocr_page(page: Any) -> str:
    """A page without a text layer (a scan): its images read by Tesseract, when Tesseract is installed."""
    from partyflow.media.ocr import OCRError, ocr, tesseract_available

    if not tesseract_available():
        return ""
    texts = []
    for picture in page.images:
        try:
            texts.append(ocr(picture.image))
        except (OCRError, ImportError):
            return ""
    return "\n\n".join(t for t in texts if t.strip())


def _image(data: bytes) -> str:
    """A photo or scan of a page: Tesseract's reading of it (needs tesseract-ocr and the media extra)."""
    from PIL import Image

    from partyflow.media.ocr import OCRError, ocr

    try:
        return ocr(Image.open(io.BytesIO(data)))
    except OCRError as exc:
        raise DocumentError(str(exc), hint="install tesseract-ocr to ingest images of text") from None


def _docx(data: bytes) -> str:
    docx = _require("docx")
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = docx.Document(io.BytesIO(data))
    blocks: list[str] = []
    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(element, document)
            text = paragraph.text.strip()
            if not text:
                continue
            style = (paragraph.style.name if paragraph.style is not None else "") or ""
            level = _heading_level(style)
            blocks.append(f"{'#' * level} {text}" if level else text)
        elif tag == "tbl":
            table = Table(element, document)
            blocks.append(_markdown_table([[cell.text.strip() for cell in row.cells] for row in table.rows]))
    return "\n\n".join(block for block in blocks if block)


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    if style.startswith("Heading "):
        digits = style.removeprefix("Heading ").strip()
        if digits.isdigit():
            return min(int(digits), 6)
    return 0


def _pptx(data: bytes) -> str:
    pptx = _require("pptx")
    presentation = pptx.Presentation(io.BytesIO(data))
    slides: list[str] = []
    for number, slide in enumerate(presentation.slides, start=1):
        title_shape = slide.shapes.title
        title = title_shape.text_frame.text.strip() if title_shape is not None and title_shape.has_text_frame else ""
        parts = [f"## Slide {number}" + (f": {title}" if title else "")]
        for shape in slide.shapes:
            if shape is title_shape:
                continue
            if getattr(shape, "has_text_frame", False) and shape.text_frame.text.strip():
                parts.append(shape.text_frame.text.strip())
            if getattr(shape, "has_table", False):
                parts.append(_markdown_table([[cell.text.strip() for cell in row.cells]
                                              for row in shape.table.rows]))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                parts.append(f"Notes: {notes}")
        slides.append("\n\n".join(parts))
    return "\n\n".join(slides)


def _xlsx(data: bytes) -> str:
    openpyxl = _require("openpyxl")
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except zipfile.BadZipFile:
        raise DocumentError("not a valid .xlsx file (it is not a zip archive; encrypted workbooks are not either)",
                            hint="save an unencrypted .xlsx copy") from None
    sheets = []
    try:
        for sheet in workbook.worksheets:
            rows = [["" if value is None else str(value) for value in row]
                    for row in sheet.iter_rows(values_only=True)]
            rows = [row for row in rows if any(cell.strip() for cell in row)]
            if rows:
                sheets.append(f"## Sheet: {sheet.title}\n\n{_markdown_table(rows)}")
    finally:
        workbook.close()
    return "\n\n".join(sheets)


def _csv(data: bytes) -> str:
    text = _decode(data)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]
    return _markdown_table(rows)


def _json(data: bytes) -> str:
    try:
        value = json.loads(_decode(data))
    except json.JSONDecodeError as exc:
        raise DocumentError(f"not valid JSON ({exc})") from None
    return "\n".join(_flatten(value, ""))


def _flatten(value: Any, prefix: str) -> Iterable[str]:
    """JSON as `path: value` lines: each fact keeps its context, which is what retrieval needs."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{index}]")
    else:
        yield f"{prefix or '(value)'}: {'' if value is None else value}"


class _HtmlToText(HTMLParser):
    """HTML to Markdown-like text: headings, paragraphs, list items and table rows; scripts and styles dropped."""

    _BLOCK = frozenset({"p", "div", "section", "article", "br", "ul", "ol", "table", "blockquote", "pre", "hr"})
    _SKIP = frozenset({"script", "style", "noscript", "template", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag == "tr":
            self._row = []
        elif tag in {"td", "th"}:
            self._cell = []
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in {"td", "th"} and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()).replace("|", "\\|"))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.parts.append("\n| " + " | ".join(self._row) + " |")
            self._row = None
        elif tag in {"h1", "h2", "h3", "h4", "h5", "h6"} or tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._cell is not None:
            self._cell.append(data)
        else:
            self.parts.append(" ".join(data.split()) + (" " if data[-1:].isspace() else ""))


def _html(data: bytes) -> str:
    parser = _HtmlToText()
    parser.feed(_decode(data))
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


def _markdown_table(rows: list[list[str]]) -> str:
    if not rows:
        return ""
    width = max(len(row) for row in rows)
    cells = [[(row[i] if i < len(row) else "").replace("\n", " ").replace("|", "\\|") for i in range(width)]
             for row in rows]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    return "\n".join(lines)


_LOADERS: dict[str, Callable[[bytes], str]] = {
    ".png": _image, ".jpg": _image, ".jpeg": _image, ".tif": _image, ".tiff": _image, ".webp": _image,
    ".pdf": _pdf, ".docx": _docx, ".pptx": _pptx, ".xlsx": _xlsx, ".xlsm": _xlsx, ".csv": _csv, ".tsv": _csv,
    ".json": _json, ".html": _html, ".htm": _html,
}
