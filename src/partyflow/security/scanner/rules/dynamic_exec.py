"""PF101: exec/eval/compile of anything but a literal.

Droppers almost always end in `exec(<decoded or downloaded text>)`; that is critical. Code assembled from literal
fragments ('ex' + 'ec', reversed strings) is folded and scanned like the rest of the module. A node that evaluates
its own user's expression is a vulnerability, not an attack: medium.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from partyflow.security.scanner import indicators as ind
from partyflow.security.scanner.model import Finding, Severity
from partyflow.security.scanner.pyfacts import fold_string
from partyflow.security.scanner.rules.base import PyContext, make

SINKS = frozenset({"exec", "eval", "compile", "execfile", "runpy.run_path", "runpy.run_module", "code.InteractiveInterpreter.runsource", "types.FunctionType", "types.CodeType"})


def check(ctx: PyContext) -> Iterator[Finding]:
    for call in ctx.facts.calls:
        if call.name not in SINKS or not call.node.args:
            continue
        first = call.node.args[0]
        labels = call.args[0] if call.args else frozenset()
        what = call.name
        if labels & {ind.DECODED, ind.NETWORK}:
            source = "downloaded" if ind.NETWORK in labels else "decoded"
            yield make(ctx, "PF101", Severity.CRITICAL, call.line,
                       f"{what}() runs {source} data: the code that runs is not the code you can read")
            continue
        if isinstance(first, ast.Constant):
            continue
        folded = fold_string(first)
        if folded is not None:
            yield make(ctx, "PF101", Severity.HIGH, call.line,
                       f"{what}() runs code assembled from string fragments (a way to hide what runs)")
            yield from ctx.scan_payload(folded, call.line) if ctx.depth < 3 else ()
            continue
        if call.name in ("runpy.run_path", "runpy.run_module") and not labels & {ind.NETWORK, ind.TEMP}:
            continue
        if labels & {ind.PARAM}:
            yield make(ctx, "PF101", Severity.MEDIUM, call.line,
                       f"{what}() evaluates caller-supplied text: anyone who controls the input runs code")
        else:
            yield make(ctx, "PF101", Severity.MEDIUM, call.line,
                       f"{what}() of computed data: check where the text comes from")
