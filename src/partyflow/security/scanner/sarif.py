"""SARIF 2.1.0 output, the format code-scanning dashboards (GitHub, GitLab, Azure DevOps) import."""

from __future__ import annotations

from typing import Any

from partyflow import __version__
from partyflow.security.scanner.catalog import RULES
from partyflow.security.scanner.model import ScanReport, Severity

__all__ = ["to_sarif"]

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Severity.LOW: "note", Severity.MEDIUM: "warning", Severity.HIGH: "error", Severity.CRITICAL: "error"}
_SCORE = {Severity.LOW: "3.0", Severity.MEDIUM: "5.5", Severity.HIGH: "8.0", Severity.CRITICAL: "9.5"}


def to_sarif(report: ScanReport) -> dict[str, Any]:
    used = sorted({f.rule_id for f in report.findings})
    rules = []
    for rule_id in used:
        known = RULES.get(rule_id)
        sample = next(f for f in report.findings if f.rule_id == rule_id)
        rules.append({"id": rule_id, "name": known.name if known else sample.rule_name,
                      "shortDescription": {"text": known.description if known else sample.rule_name},
                      "properties": {"tool": sample.tool}})
    index = {rule_id: i for i, rule_id in enumerate(used)}
    results = []
    for finding in report.findings:
        physical: dict[str, Any] = {"artifactLocation": {"uri": finding.path.replace("!", "/")}}
        if finding.line:
            physical["region"] = {"startLine": finding.line}
        results.append({"ruleId": finding.rule_id, "ruleIndex": index[finding.rule_id],
                        "level": _LEVEL[finding.severity], "message": {"text": finding.message},
                        "locations": [{"physicalLocation": physical}],
                        "properties": {"severity": finding.severity.label,
                                       "security-severity": _SCORE[finding.severity]}})
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "partyflow-scan", "version": __version__, "informationUri":
                            "https://example.invalid/partyflow", "rules": rules}},
        "results": results,
        "originalUriBaseIds": {"SRCROOT": {"uri": report.root}},
    }]}
