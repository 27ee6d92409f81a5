"""PF102: code hidden from the reader: long encoded blobs, chr() chains, marshal, packers.

A blob is decoded here (decoding is not running) and judged by what it contains: images and fonts are fine, Python
source is scanned like the module itself and reported at the blob's line, anything else opaque is medium.

chr() is judged the same way: only chr() of literal numbers hides anything (`chr(i) for i in range(0x20, 0x7F)`, a
character table, hides nothing), and the hidden text is decoded and named in the finding. Packers are recognised
by what their output does (imports and calls of the PyArmor runtime, dozens of `_0x` identifiers, the packer's
banner comment at the top), not by the words appearing in a string: a scanner's own rule list names them too.
"""

from __future__ import annotations

import ast
import base64
import binascii
import bz2
import lzma
import re
import zlib
from collections.abc import Iterator

from partyflow.security.scanner import indicators as ind
from partyflow.security.scanner.model import Finding, Severity
from partyflow.security.scanner.rules.base import PyContext, make

MIN_BLOB = 160
_B64 = re.compile(r"^[A-Za-z0-9+/_\-\s]+={0,2}\s*$")
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2}|\\x[0-9a-fA-F]{2})+$")
_MEDIA = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"wOFF", b"wOF2", b"\x00\x01\x00\x00", b"OTTO", b"<svg",
          b"<?xml", b"%PDF", b"ID3", b"fLaC", b"OggS", b"\x1aE\xdf\xa3")
_PACKER_NAMES = re.compile(r"^(__pyarmor(__|_enter\w*|_exit\w*|_assert\w*)|pyarmor_runtime\w*|pytransform)$")
_PACKER_BANNER = re.compile(r"^#.*\b(obfuscated by|pyobfuscate|pyarmor|pyminifier|opy obfuscator)", re.IGNORECASE)
_HEX_IDENT = re.compile(r"^_0x[0-9a-f]{4,}$")
_CHR_CHAIN = 6
_HIDDEN_TEXT = 3   # chr() of this many literal numbers spelling words is hidden text


def check(ctx: PyContext) -> Iterator[Finding]:
    facts = ctx.facts
    chained: set[int] = set()
    for node in ast.walk(facts.tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes) and len(node.value) >= MIN_BLOB:
            yield from _blob(ctx, node)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and id(node) not in chained:
            codes = _chr_sum(node)
            for inner in ast.walk(node):
                chained.add(id(inner))
            count = sum(_chr_of_int(inner) is not None for inner in ast.walk(node))
            if codes is not None and count >= _CHR_CHAIN:
                yield from _hidden_text(ctx, node.lineno, codes, f"a string built from {count} chr() calls")
    for call in facts.calls:
        if call.name in ("marshal.loads", "marshal.load"):
            first = call.arg(0)
            if ind.DECODED in call.all_args or ind.NETWORK in call.all_args \
                    or (isinstance(first, ast.Constant) and isinstance(first.value, bytes | str)):
                yield make(ctx, "PF102", Severity.HIGH, call.line,
                           "marshal.loads() of an embedded or downloaded blob rebuilds code objects: source that "
                           "cannot be reviewed")
            else:
                yield make(ctx, "PF102", Severity.MEDIUM, call.line,
                           "marshal.loads() of a file (a bytecode cache?) rebuilds code objects")
        elif call.method == "join" and call.node.args:
            codes = chr_literal_codes(call.node.args[0])
            if codes is not None:
                yield from _hidden_text(ctx, call.line, codes, "a string joined from chr() of literal numbers")
    yield from _packed(ctx)


def _packed(ctx: PyContext) -> Iterator[Finding]:
    facts = ctx.facts
    hex_names = 0
    for node in ast.walk(facts.tree):
        names: list[str] = []
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [part for alias in node.names for part in alias.name.split(".")]
            names += (node.module or "").split(".") if isinstance(node, ast.ImportFrom) else []
        elif isinstance(node, ast.arg):
            names = [node.arg]
        for name in names:
            if _PACKER_NAMES.match(name):
                yield make(ctx, "PF102", Severity.HIGH, getattr(node, "lineno", 1),
                           f"packed code (the {name} runtime of a code packer): what runs cannot be reviewed")
                return
            hex_names += bool(_HEX_IDENT.match(name))
    if hex_names >= 10:
        yield make(ctx, "PF102", Severity.HIGH, 1, f"{hex_names} obfuscated _0x identifiers: code renamed so it "
                   "cannot be read")
        return
    for number, line in enumerate(facts.source.splitlines()[:8], 1):
        if _PACKER_BANNER.match(line.strip()):
            yield make(ctx, "PF102", Severity.HIGH, number, "the banner of a code obfuscator: what runs cannot be "
                       "reviewed")
            return


def _hidden_text(ctx: PyContext, line: int, codes: list[int], what: str) -> Iterator[Finding]:
    """Judge text spelled with chr(): words, names, paths or URLs are hidden on purpose (high); other characters
    (symbols, box drawing, control codes) are a table written the long way (low)."""
    try:
        text = "".join(chr(c) for c in codes)
    except (ValueError, OverflowError):
        return
    printable = all(c.isascii() and c.isprintable() for c in text)
    wordy = sum(c.isalnum() for c in text) >= len(text) / 2 and any(c.isalpha() for c in text)
    if len(text) >= _HIDDEN_TEXT and printable and wordy:
        shown = text if len(text) <= 40 else text[:37] + "..."
        yield make(ctx, "PF102", Severity.HIGH, line, f"{what} spells {shown!r}: text hidden from readers and "
                   "scanners")
    elif len(codes) >= _CHR_CHAIN:
        yield make(ctx, "PF102", Severity.LOW, line, f"{what} (symbols or control characters)")


def _blob(ctx: PyContext, node: ast.Constant) -> Iterator[Finding]:
    value = node.value
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    decoded = decode_blob(text) if isinstance(value, str) else _decompress(value)
    if decoded is None:
        return
    payload = _as_code(decoded)
    if payload is not None:
        yield make(ctx, "PF102", Severity.HIGH, node.lineno,
                   f"a {len(text)}-character encoded blob that decodes to Python code")
        if ctx.depth < 3:
            yield from ctx.scan_payload(payload, node.lineno)
        return
    if decoded.startswith(_MEDIA) or decoded.lstrip().startswith((b"{", b"[", b"<")):
        return
    if isinstance(value, str):
        yield make(ctx, "PF102", Severity.MEDIUM, node.lineno,
                   f"a {len(text)}-character encoded blob of opaque binary data")


def decode_blob(text: str) -> bytes | None:
    """base64 or hex text, optionally compressed, decoded to bytes; None when it is ordinary text."""
    compact = "".join(text.split())
    if len(compact) < MIN_BLOB:
        return None
    raw: bytes | None = None
    if _HEX.match(compact):
        try:
            raw = bytes.fromhex(compact.replace("\\x", ""))
        except ValueError:
            raw = None
    elif _B64.match(text) and _looks_random(text, compact):
        try:
            raw = base64.b64decode(compact + "=" * (-len(compact) % 4), altchars=b"-_" if "-" in compact
                                   or "_" in compact else None, validate=False)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None:
        return None
    return _decompress(raw) or raw


def _looks_random(text: str, compact: str) -> bool:
    """Base64 of binary data mixes cases and digits and breaks lines rarely; prose and identifiers do not."""
    breaks = len(text.split()) - 1
    return breaks <= len(compact) // 60 and any(c.isdigit() for c in compact) \
        and any(c.isupper() for c in compact) and any(c.islower() for c in compact)


def _decompress(raw: bytes) -> bytes | None:
    for opener in (zlib.decompress, bz2.decompress, lzma.decompress):
        try:
            return opener(raw)[: 4 * 1024 * 1024]
        except Exception:  # noqa: BLE001 - any failure just means "not this format"
            continue
    return None


def _as_code(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not any(word in text for word in ("import ", "exec(", "eval(", "subprocess", "socket", "os.", "open(")):
        return None
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    return text


def _int_list(node: ast.AST) -> list[int] | None:
    if isinstance(node, ast.List | ast.Tuple) and node.elts and all(
            isinstance(e, ast.Constant) and type(e.value) is int for e in node.elts):
        return [e.value for e in node.elts]  # type: ignore[attr-defined]
    return None


def _is_chr(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "chr"


def chr_literal_codes(node: ast.AST) -> list[int] | None:
    """The numbers of `map(chr, [104, 116])`, `chr(c) for c in [104, 116]` or `[chr(104), chr(116)]`; None when
    chr() is not applied to literal numbers (a `range`, a variable, a table being built)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "map" \
            and len(node.args) == 2 and _is_chr(node.args[0]):
        return _int_list(node.args[1])
    if isinstance(node, ast.GeneratorExp | ast.ListComp) and len(node.generators) == 1:
        gen = node.generators[0]
        elt = node.elt
        if isinstance(elt, ast.Call) and _is_chr(elt.func) and len(elt.args) == 1 \
                and isinstance(elt.args[0], ast.Name) and isinstance(gen.target, ast.Name) \
                and elt.args[0].id == gen.target.id and not gen.ifs:
            return _int_list(gen.iter)
        return None
    if isinstance(node, ast.List | ast.Tuple) and node.elts:
        codes = [_chr_of_int(e) for e in node.elts]
        return None if any(c is None for c in codes) else [c for c in codes if c is not None]
    return None


def _chr_of_int(node: ast.AST) -> int | None:
    if isinstance(node, ast.Call) and _is_chr(node.func) and len(node.args) == 1 \
            and isinstance(node.args[0], ast.Constant) and type(node.args[0].value) is int:
        return node.args[0].value
    return None


def _chr_sum(node: ast.AST) -> list[int] | None:
    """`chr(104) + chr(116) + "p"`: the characters' numbers, in order; None when a part is neither chr() of a literal
    number nor a string literal."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _chr_sum(node.left), _chr_sum(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [ord(c) for c in node.value]
    code = _chr_of_int(node)
    return None if code is None else [code]
