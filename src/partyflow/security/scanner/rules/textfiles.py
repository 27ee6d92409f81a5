"""Rules on raw text, for every text file but Python: PF110 miner indicators, and for shell/batch/PowerShell
scripts PF105 download-and-run and PF108 persistence commands. Also PF111 (.pth files) and PF112 (native binaries),
which are judged by a file's name and first bytes.

Miner names in prose (README, docs, a changelog warning about a malicious package) are noted, not alarmed on; in
scripts and configuration they are what runs. Python files get the data-flow version of this rule (`rules/miner`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from partyflow.security.scanner.catalog import RULES
from partyflow.security.scanner.indicators import (
    MINER_PATTERN,
    download_exec_in,
    miner_list,
    persistence_command_in,
)
from partyflow.security.scanner.model import Finding, Severity

SCRIPT_SUFFIXES = (".sh", ".bash", ".zsh", ".bat", ".cmd", ".ps1", ".command", ".vbs")
_NATIVE_MAGIC = (b"\x7fELF", b"MZ", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe")
NATIVE_SUFFIXES = (".exe", ".dll", ".so", ".dylib", ".scr", ".msi", ".com", ".sys", ".elf")


def _finding(relpath: str, text: str, offset: int, rule_id: str, severity: Severity, message: str) -> Finding:
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    snippet = text[start: end if end != -1 else len(text)].strip()[:160]
    return Finding(relpath, line, rule_id, severity, message, RULES[rule_id].name, snippet=snippet)


PROSE_SUFFIXES = (".md", ".rst", ".txt", ".html", ".htm", ".markdown", ".adoc")


def check_text(relpath: str, text: str) -> Iterator[Finding]:
    lowered = relpath.lower()
    if lowered.endswith((".py", ".pyw")):
        return
    prose = lowered.endswith(PROSE_SUFFIXES)
    seen: set[str] = set()
    for match in MINER_PATTERN.finditer(text):
        kind = match.lastgroup or "indicator"
        if kind in seen:
            continue
        seen.add(kind)
        line_start = text.rfind("\n", 0, match.start()) + 1
        line_end = text.find("\n", match.end()) % (len(text) + 1)
        if kind in ("program", "pool", "option") and (prose or miner_list(text[line_start:line_end])):
            severity = Severity.LOW if miner_list(text[line_start:line_end]) else Severity.MEDIUM
        else:
            severity = Severity.CRITICAL if kind == "stratum" else Severity.HIGH
        what = {"stratum": "a stratum mining-pool URL", "program": f"the miner program {match.group(0)!r}",
                "pool": f"the mining pool {match.group(0)!r}", "option": f"the miner option {match.group(0)!r}",
                "wallet": "a Monero wallet address"}[kind]
        yield _finding(relpath, text, match.start(), "PF110", severity, f"crypto-miner indicator: {what}")
    if relpath.lower().endswith(SCRIPT_SUFFIXES):
        found = download_exec_in(text)
        if found:
            yield _finding(relpath, text, found.start(), "PF105", Severity.HIGH,
                           "the script downloads code and runs it (or runs an encoded command)")
        persisted = persistence_command_in(text)
        if persisted:
            yield _finding(relpath, text, persisted.start(), "PF108", Severity.HIGH,
                           "the script installs persistence (crontab, scheduled task, service, Run key)")
        for marker in (".bashrc", ".bash_profile", ".zshrc", ".profile", "/etc/profile", "authorized_keys"):
            position = text.find(marker)
            if position != -1 and re.search(r">>?\s*\S*" + re.escape(marker), text):
                yield _finding(relpath, text, position, "PF108", Severity.HIGH,
                               f"the script writes {marker}: code that runs at every login")
                break


def check_pth(relpath: str, data: bytes) -> Iterator[Finding]:
    """A .pth file placed in site-packages is read at every interpreter start; `import` lines in it run code."""
    text = data.decode("utf-8", "replace")
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith(("import ", "import\t")):
            yield Finding(relpath, number, "PF111", Severity.CRITICAL,
                          "ships a .pth file with an import line: code that runs at every Python start "
                          "(the litellm 1.82.8 technique)", RULES["PF111"].name, snippet=line.strip()[:160])
            return
    yield Finding(relpath, 0, "PF111", Severity.HIGH, "ships a .pth file: it changes sys.path of every Python "
                  "start once placed in site-packages", RULES["PF111"].name)


def is_native(name: str, head: bytes) -> bool:
    return name.lower().endswith(NATIVE_SUFFIXES) or head.startswith(_NATIVE_MAGIC) and not head.startswith(b"MZ\x00\x00\x00\x00")


def check_native(relpath: str) -> Finding:
    return Finding(relpath, 0, "PF112", Severity.MEDIUM, "ships a native executable or library: it cannot be "
                   "reviewed as source", RULES["PF112"].name)
