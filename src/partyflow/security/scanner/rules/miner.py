"""PF110 in Python: crypto miners, judged by where the miner's names go.

A miner pack starts a miner program against a pool (`Popen(["./xmrig", "-o", "stratum+tcp://..."])`), downloads
one, or writes its configuration. Code that merely names miners (a security tool's rule list, ComfyUI-Manager's
advice on removing a known malicious package) is not a miner. So: a stratum URL or a Monero wallet in a string is
what a miner is configured with (critical, high); a miner's name reaching a process, the network or a written file
is high; a name that goes nowhere is medium; a text listing several miners is detection code and not reported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from partyflow.security.scanner import indicators as ind
from partyflow.security.scanner.model import Finding, Severity
from partyflow.security.scanner.pyfacts import is_network_call
from partyflow.security.scanner.rules.base import PyContext, make
from partyflow.security.scanner.rules.process import SPAWNERS

_WRITERS = frozenset({"write", "write_text", "write_bytes", "writelines", "open", "dump", "copyfile", "copy",
                      "urlretrieve", "download"})


def check(ctx: PyContext) -> Iterator[Finding]:
    facts = ctx.facts
    flagged: set[int] = set()
    for call in facts.calls:
        if ind.MINER not in call.all_args | call.receiver:
            continue
        if call.name in SPAWNERS:
            what = "starts a process with miner arguments"
        elif is_network_call(call):
            what = "sends or fetches miner names over the network"
        elif call.method in _WRITERS:
            what = "writes a miner's name or configuration to a file"
        else:
            continue
        flagged.add(call.line)
        yield make(ctx, "PF110", Severity.HIGH, call.line, f"crypto miner: {what}")
    seen: set[str] = set()
    docstrings: set[str] | None = None
    for line, text in facts.strings:
        if line in flagged or not ind.MINER_PATTERN.search(text) or ind.miner_list(text):
            continue
        docstrings = _docstrings(facts.tree) if docstrings is None else docstrings
        if text in docstrings:
            continue
        for match in ind.MINER_PATTERN.finditer(text):
            kind = match.lastgroup or "indicator"
            if kind in seen:
                continue
            seen.add(kind)
            if kind == "stratum":
                yield make(ctx, "PF110", Severity.CRITICAL, line, "crypto-miner indicator: a stratum mining-pool URL")
            elif kind == "wallet":
                yield make(ctx, "PF110", Severity.HIGH, line, "crypto-miner indicator: a Monero wallet address")
            else:
                yield make(ctx, "PF110", Severity.MEDIUM, line,
                           f"names the miner {kind} {match.group(0)!r} (not passed to a process, file or the "
                           "network here)")



def _docstrings(tree: ast.Module) -> set[str]:
    """Documentation is prose about the code, not its configuration."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            text = ast.get_docstring(node, clean=False)
            if text:
                found.add(text)
    return found
