"""PF104 network use at import time, PF105 downloads of executables.

Importing a pack should not talk to the network: the server imports every pack at start, so import-time traffic
happens without anyone asking (beacons, droppers, update checks that leak what is installed). Downloading an
executable or script and making it runnable is how a small pack pulls in a payload nobody reviewed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from partyflow.security.scanner import indicators as ind
from partyflow.security.scanner.model import Finding, Severity
from partyflow.security.scanner.pyfacts import CallFact, is_network_call
from partyflow.security.scanner.rules.base import PyContext, make

_EXEC_BITS = 0o111


def check(ctx: PyContext) -> Iterator[Finding]:
    facts = ctx.facts
    network = [c for c in facts.calls if is_network_call(c)]
    for call in network:
        if call.import_time and not facts.install_script:
            yield make(ctx, "PF104", Severity.HIGH, call.line,
                       f"{call.name.removeprefix('?.')}() runs when the module is imported: network use nobody "
                       "asked for")
        elif call.import_time:
            yield make(ctx, "PF104", Severity.MEDIUM, call.line, "the install script uses the network")
        if ind.EXE_REF in call.all_args:
            yield make(ctx, "PF105", Severity.HIGH, call.line, "downloads an executable or script")
    if not network:
        return
    for call in facts.calls:
        if call.name in ("os.chmod", "?.chmod", "pathlib.Path().chmod") and _makes_executable(call):
            yield make(ctx, "PF105", Severity.HIGH, call.line,
                       "marks a file executable in a module that downloads files: a dropper pattern")
        elif call.name == "os.startfile" and ind.NETWORK in call.all_args:
            yield make(ctx, "PF105", Severity.HIGH, call.line, "opens (runs) a downloaded file")


def _makes_executable(call: CallFact) -> bool:
    mode = call.arg(1, "mode") if call.name == "os.chmod" else call.arg(0, "mode")
    if isinstance(mode, ast.Constant) and isinstance(mode.value, int):
        return bool(mode.value & _EXEC_BITS)
    text = ast.unparse(mode) if mode is not None else ""
    return any(flag in text for flag in ("S_IEXEC", "S_IXUSR", "S_IXGRP", "S_IXOTH", "S_IRWXU"))
