"""PF109 (files): pickles shipped in the pack, read opcode by opcode and never loaded.

A pickle names the callables it calls while loading (GLOBAL / STACK_GLOBAL opcodes). Model checkpoints name torch,
numpy and collections helpers; a pickle that names os.system, subprocess, eval/exec or similar is an attack.
PyTorch's zip format keeps its pickle in `*/data.pkl`, read the same way.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from collections.abc import Iterator

from partyflow.security.scanner.catalog import RULES
from partyflow.security.scanner.model import Finding, Severity

PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib", ".bin", ".dat", ".npy")
MAX_PICKLE_BYTES = 64 * 1024 * 1024
_DANGEROUS_MODULES = ("os", "posix", "nt", "subprocess", "sys", "socket", "shutil", "runpy", "webbrowser",
                      "pty", "commands", "importlib", "ctypes", "urllib", "requests", "httpx", "marshal", "pickle",
                      "code", "codeop", "asyncio", "multiprocessing", "platform")
_DANGEROUS_BUILTINS = frozenset({"eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "globals",
                                 "breakpoint", "input", "execfile", "apply"})


def looks_like_pickle(head: bytes) -> bool:
    return head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")


def check_pickle_bytes(relpath: str, data: bytes) -> Iterator[Finding]:
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for info in archive.infolist():
                    if info.filename.endswith(".pkl") and info.file_size <= MAX_PICKLE_BYTES:
                        yield from _opcodes(f"{relpath}!{info.filename}", archive.read(info))
        except (zipfile.BadZipFile, OSError, RuntimeError):
            return
        return
    if looks_like_pickle(data[:2]):
        yield from _opcodes(relpath, data)


def _opcodes(relpath: str, data: bytes) -> Iterator[Finding]:
    recent: list[str] = []
    try:
        for opcode, arg, _pos in pickletools.genops(io.BytesIO(data)):
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                recent = [*recent[-1:], str(arg)]
            elif opcode.name in ("GLOBAL", "INST"):
                module, _, name = str(arg).partition(" ")
                yield from _judge(relpath, module, name)
            elif opcode.name == "STACK_GLOBAL" and len(recent) == 2:
                yield from _judge(relpath, recent[0], recent[1])
            elif opcode.name == "STOP":
                break
    except Exception:  # noqa: BLE001 - a truncated or odd stream simply ends the inspection
        return


def _judge(relpath: str, module: str, name: str) -> Iterator[Finding]:
    root = module.split(".")[0]
    if root in _DANGEROUS_MODULES or (root in ("builtins", "__builtin__") and name in _DANGEROUS_BUILTINS):
        yield Finding(relpath, 0, "PF109", Severity.CRITICAL,
                      f"a pickle that calls {module}.{name} while loading: loading it runs code",
                      RULES["PF109"].name)
