"""PF102: code hidden from the reader: long encoded blobs, chr() chains, marshal, packers.

A blob is decoded here (decoding is not running) and judged by what it contains: images and fonts are fine, Python
source is scanned like the module itself and reported at the blob's line, anything else opaque is medium.
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

from partyflow.security.scanner.model import Finding, Severity
from partyflow.security.scanner.rules.base import PyContext, make

MIN_BLOB = 160
_B64 = re.compile(r"^[A-Za-z0-9+/_\-\s]+={0,2}\s*$")
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2}|\\x[0-9a-fA-F]{2})+$")
_MEDIA = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"wOFF", b"wOF2", b"\x00\x01\x00\x00", b"OTTO", b"<svg",
          b"<?xml", b"%PDF", b"ID3", b"fLaC", b"OggS", b"\x1aE\xdf\xa3")
_PACKERS = ("__pyarmor__", "pyarmor_runtime", "__pyarmor_enter", "pyobfuscate", "Obfuscated by", "_0x")
_CHR_CHAIN = 6


def check(ctx: PyContext) -> Iterator[Finding]:
    facts = ctx.facts
    for node in ast.walk(facts.tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes) and len(node.value) >= MIN_BLOB:
            yield from _blob(ctx, node)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and _chr_count(node) >= _CHR_CHAIN:
            yield make(ctx, "PF102", Severity.HIGH, node.lineno,
                       f"a string built from {_chr_count(node)} chr() calls: text hidden from readers and scanners")
    for call in facts.calls:
        if call.name in ("marshal.loads", "marshal.load"):
            yield make(ctx, "PF102", Severity.HIGH, call.line,
                       "marshal.loads() rebuilds compiled code objects: source that cannot be reviewed")
        elif call.method == "join" and call.node.args and _chr_over_ints(call.node.args[0]) >= _CHR_CHAIN:
            yield make(ctx, "PF102", Severity.HIGH, call.line,
                       "a string joined from chr() of a list of numbers: text hidden from readers and scanners")
    source = facts.source
    for marker in _PACKERS:
        if marker == "_0x":
            if len(re.findall(r"\b_0x[0-9a-f]{4,}\b", source)) < 10:
                continue
        elif marker not in source:
            continue
        line = source[: source.find(marker)].count("\n") + 1
        yield make(ctx, "PF102", Severity.HIGH, line, f"packed/obfuscated code ({marker.strip('_')} marker): "
                   "what runs cannot be reviewed")
        break


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


def _chr_count(node: ast.AST) -> int:
    return sum(1 for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
               and n.func.id == "chr")


def _chr_over_ints(node: ast.AST) -> int:
    """`chr(c) for c in [104, 116, ...]` or `map(chr, [...])`: the number of integer literals fed to chr."""
    if not any(isinstance(n, ast.Name) and n.id == "chr" for n in ast.walk(node)):
        return 0
    ints = [n for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, int)]
    return len(ints)
