"""What every rule shares: the context it is given and one way to make a finding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from partyflow.security.scanner.catalog import RULES
from partyflow.security.scanner.model import Finding, Severity
from partyflow.security.scanner.pyfacts import ModuleFacts

__all__ = ["PyContext", "make"]

PayloadScanner = Callable[[str, int], list[Finding]]
"""scan_payload(decoded_source, line): findings for code recovered from a blob, reported at the blob's line."""


@dataclass(frozen=True)
class PyContext:
    facts: ModuleFacts
    scan_payload: PayloadScanner
    depth: int = 0           # > 0 while scanning code recovered from a blob


def make(ctx: PyContext | ModuleFacts, rule_id: str, severity: Severity, line: int, message: str) -> Finding:
    facts = ctx.facts if isinstance(ctx, PyContext) else ctx
    prefix = "in decoded payload: " if isinstance(ctx, PyContext) and ctx.depth else ""
    return Finding(path=facts.relpath, line=line, rule_id=rule_id, severity=severity, message=prefix + message,
                   rule_name=RULES[rule_id].name, snippet=facts.line_text(line))
