"""What a scan produces: findings with a severity, and a report that knows how to summarise itself.

A finding is a value a person can act on without re-running the scanner: which rule, how bad, where (file and line
relative to the scanned root) and why it matters. Severities are ordered so policies can say "refuse at high".
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Finding", "ScanReport", "Severity", "SkippedFile"]


class Severity(enum.IntEnum):
    """How bad a finding is. `high` and above mean "looks like an attack"; `medium` means "risky, review it"."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str | Severity) -> Severity:
        if isinstance(text, Severity):
            return text
        try:
            return cls[str(text).strip().upper()]
        except KeyError:
            valid = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r}; use one of {valid}") from None


@dataclass(frozen=True, order=True)
class Finding:
    """One reason for concern. `path` is relative to the scanned root (`wheel.whl!pkg/mod.py` inside archives)."""

    path: str
    line: int
    rule_id: str
    severity: Severity
    message: str
    rule_name: str = ""
    tool: str = "partyflow"   # partyflow | bandit | osv
    snippet: str = ""

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path

    def to_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "rule": self.rule_name, "severity": self.severity.label,
                "path": self.path, "line": self.line, "message": self.message, "tool": self.tool,
                "snippet": self.snippet}


@dataclass(frozen=True)
class SkippedFile:
    """A file the scanner did not analyse, and why (size, binary, unreadable): coverage is part of the result."""

    path: str
    reason: str


@dataclass
class ScanReport:
    """Everything one `scan()` found. Findings are sorted worst first, then by place."""

    target: str
    root: str
    findings: list[Finding] = field(default_factory=list)
    files_scanned: int = 0
    bytes_scanned: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    tools: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, findings: Iterable[Finding]) -> None:
        self.findings.extend(findings)

    def finish(self) -> ScanReport:
        unique = {(f.path, f.line, f.rule_id, f.message): f for f in self.findings}
        self.findings = sorted(unique.values(), key=lambda f: (-f.severity, f.path, f.line, f.rule_id))
        return self

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def at_or_above(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity >= severity]

    def counts(self) -> dict[str, int]:
        counted = Counter(f.severity.label for f in self.findings)
        return {s.label: counted.get(s.label, 0) for s in Severity}

    def summary(self, *, top: int = 5) -> dict[str, Any]:
        """A short form for the audit log: counts, the worst severity and the worst few findings."""
        worst = self.max_severity
        return {"target": self.target, "files": self.files_scanned, "counts": self.counts(),
                "max_severity": worst.label if worst else None,
                "top": [f"{f.severity.label} {f.rule_id} {f.location}: {f.message}" for f in self.findings[:top]],
                "skipped": len(self.skipped), "tools": dict(self.tools)}

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(top=0), "root": self.root, "bytes": self.bytes_scanned,
                "seconds": round(self.seconds, 4), "findings": [f.to_dict() for f in self.findings],
                "skipped_files": [{"path": s.path, "reason": s.reason} for s in self.skipped]}
