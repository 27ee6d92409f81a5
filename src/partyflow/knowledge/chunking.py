"""Structure-aware chunking: Markdown-like text (what the loaders produce) into token-sized chunks with overlap.

Blocks are paragraphs, tables, list runs and headings. A chunk is filled with whole blocks; a new section heading
starts a new chunk once the current one has some body, so chunks rarely straddle sections; a block larger than a
chunk is split at sentence boundaries (tables at row boundaries, repeating the header row). Each chunk records
its heading path ("Handbook > Travel > Approvals") and page, which become part of what is embedded and cited.

Token counts come from a tokenizer that never downloads anything: the embedding model's own `tokenizer.json`
when it has one (through the `tokenizers` package), else a regex tokenizer that counts words, numbers and
punctuation marks (close to a BPE count for English prose, and never fewer tokens than words).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_PAGE = re.compile(r"^<!-- page (\d+) -->$")


class Tokenizer(Protocol):
    name: str

    def count(self, text: str) -> int: ...


class RegexTokenizer:
    """Words, numbers and punctuation marks; a word longer than 8 characters counts one token per 6 more."""

    name = "regex"

    def count(self, text: str) -> int:
        return sum(1 + max(0, len(token) - 8) // 6 for token in _WORD.findall(text))


class FileTokenizer:
    """A Hugging Face `tokenizer.json` read from disk (a local embedding model's), via the `tokenizers` package."""

    def __init__(self, path: str | Path) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        self.name = f"file:{path}"
        self._tokenizer = HFTokenizer.from_file(str(path))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()  # some tokenizer.json files pad to a fixed length, which is not a count

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


@dataclass(frozen=True)
class Chunk:
    seq: int
    text: str
    heading: str
    page: int | None
    tokens: int

    @property
    def embed_text(self) -> str:
        """What is embedded and indexed: the heading path gives a paragraph the context it lacks on its own."""
        return f"{self.heading}\n\n{self.text}" if self.heading else self.text


@dataclass
class _Block:
    body: str
    heading: str
    page: int | None
    tokens: int
    starts_section: bool = False
    table: bool = False
    title: str = ""  # the heading lines that open this block's section, kept in the chunk text

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.body}" if self.title else self.body


def split_text(text: str, *, chunk_tokens: int = 400, overlap_tokens: int = 50,
               tokenizer: Tokenizer | None = None) -> list[Chunk]:
    """Chunks of at most about `chunk_tokens` tokens, each starting with up to `overlap_tokens` of the previous."""
    if chunk_tokens < 16:
        raise ValueError("chunk_tokens must be at least 16")
    if not 0 <= overlap_tokens < chunk_tokens // 2:
        raise ValueError("overlap_tokens must be between 0 and half of chunk_tokens")
    tok = tokenizer or RegexTokenizer()
    blocks = [piece for block in _blocks(text, tok) for piece in _fit(block, chunk_tokens, tok)]
    chunks: list[Chunk] = []
    current: list[_Block] = []
    size = 0
    carried = 0  # tokens of `current` that repeat the previous chunk

    def flush() -> None:
        nonlocal current, size, carried
        if size - carried <= 0:
            return
        body = "\n\n".join(block.text for block in current)
        last = current[-1]
        chunks.append(Chunk(len(chunks), body, _common_heading(current), _first_page(current), size))
        tail: list[_Block] = []
        tail_size = 0
        for block in reversed(current):  # overlap: whole trailing blocks of the same section that fit
            if block.heading != last.heading or tail_size + block.tokens > overlap_tokens or block.table:
                break
            tail.insert(0, block)
            tail_size += block.tokens
        current, size, carried = tail, tail_size, tail_size

    for block in blocks:
        new_section = block.starts_section and size - carried >= chunk_tokens // 4
        heading_changed = current and block.heading != current[-1].heading
        if new_section or size + block.tokens > chunk_tokens:
            flush()
        if carried and (heading_changed or size + block.tokens > chunk_tokens):
            current, size, carried = [], 0, 0  # no overlap across sections, nor when it would overfill the chunk
        current.append(block)
        size += block.tokens
    flush()
    return chunks


def _common_heading(blocks: list[_Block]) -> str:
    """The deepest heading path all blocks share: a chunk holding two small sections is labelled by their parent."""
    paths = [block.heading.split(" > ") if block.heading else [] for block in blocks]
    common: list[str] = []
    for parts in zip(*paths, strict=False):
        if any(part != parts[0] for part in parts):
            break
        common.append(parts[0])
    return " > ".join(common)


def _first_page(blocks: list[_Block]) -> int | None:
    return next((block.page for block in blocks if block.page is not None), None)


def _blocks(text: str, tok: Tokenizer) -> list[_Block]:
    blocks: list[_Block] = []
    path: list[tuple[int, str]] = []
    page: int | None = None
    titles: list[str] = []  # heading lines waiting for the body they introduce
    for raw in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        body: list[str] = []
        for line in (line for line in raw.strip("\n").split("\n") if line.strip()):
            stripped = line.strip()
            if (match := _PAGE.match(stripped)) is not None:
                page = int(match.group(1))
                continue
            if (match := _HEADING.match(stripped)) is not None:
                if body:
                    blocks.append(_make(body, path, page, tok, titles))
                    body, titles = [], []
                level = len(match.group(1))
                path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, match.group(2).strip())]
                titles.append(stripped)
                continue
            body.append(line)
        if body:
            blocks.append(_make(body, path, page, tok, titles))
            titles = []
    return blocks


def _make(lines: list[str], path: list[tuple[int, str]], page: int | None, tok: Tokenizer,
          titles: list[str]) -> _Block:
    body = "\n".join(lines).strip()
    title = "\n".join(titles)
    table = all(line.lstrip().startswith("|") for line in lines)
    return _Block(body, " > ".join(t for _, t in path), page, tok.count(f"{title}\n{body}" if title else body),
                  bool(titles), table, title)


def _fit(block: _Block, limit: int, tok: Tokenizer) -> list[_Block]:
    """A block as pieces no larger than `limit` tokens: tables by rows, prose by sentences, then by words."""
    if block.tokens <= limit:
        return [block]
    if block.table:
        rows = block.body.split("\n")
        header = rows[:2] if len(rows) > 2 and set(rows[1].replace("|", "")) <= {"-", " ", ":"} else rows[:1]
        units = rows[len(header):]
        return _pack(units, block, limit, tok, prefix="\n".join(header), joiner="\n")
    units = [piece for piece in _SENTENCE_END.split(block.body) if piece.strip()]
    return _pack(units, block, limit, tok, prefix="", joiner=" ")


def _pack(units: list[str], block: _Block, limit: int, tok: Tokenizer, *, prefix: str, joiner: str) -> list[_Block]:
    budget = limit - (tok.count(prefix) if prefix else 0) - (tok.count(block.title) if block.title else 0)
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for unit in units:
        for part in _words(unit, max(budget, 8), tok):
            count = tok.count(part)
            if current and size + count > budget:
                pieces.append(joiner.join(current))
                current, size = [], 0
            current.append(part)
            size += count
    if current:
        pieces.append(joiner.join(current))
    out = []
    for index, piece in enumerate(pieces):
        body = f"{prefix}\n{piece}" if prefix else piece
        title = block.title if index == 0 else ""
        out.append(_Block(body, block.heading, block.page, tok.count(f"{title}\n{body}" if title else body),
                          block.starts_section and index == 0, block.table, title))
    return out


def _words(unit: str, budget: int, tok: Tokenizer) -> list[str]:
    """A sentence longer than the budget, cut into word runs that fit."""
    if tok.count(unit) <= budget:
        return [unit]
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for word in unit.split():  # counted word by word: linear even for a page-long run-on line
        count = tok.count(word)
        if current and size + count > budget:
            parts.append(" ".join(current))
            current, size = [], 0
        current.append(word)
        size += count
    if current:
        parts.append(" ".join(current))
    return parts
