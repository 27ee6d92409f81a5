"""SARIF 2.1.0 output, the format code-scanning dashboards (GitHub, GitLab, Azure DevOps) import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from partyflow import __version__
from partyflow.security.scanner.catalog import RULES
from partyflow.security.scanner.model import ScanReport, Severity

__all__ = ["to_sarif"]

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Severity.LOW: "note", Severity.MEDIUM: "warning", Severity.HIGH: "error", Severity.CRITICAL: "error"}
_SCORE = {Severity.LOW: "3.0", Severity.MEDIUM: "5.5", Severity.HIGH: "8.0", Severity.CRITICAL: "9.5"}


def to_sarif(report: ScanReport, *, base: str | Path | None = None) -> dict[str, Any]:
    """The report as one SARIF 2.1.0 run: one rule per rule id seen, one result per finding.

    `base`: a folder the scanned root lies in (a CI job's checkout, usually the working directory); locations are
    then written relative to it, so dashboards find the files in the repository. Otherwise they are relative to
    the scanned root. Either way `SRCROOT` names that folder as a file URI. Each rule carries the
    `security-severity` of its worst finding, which GitHub uses to rank alerts.
    """
    root = Path(report.root).resolve()
    root = root if root.is_dir() or not root.exists() else root.parent  # a scanned file: paths are beside it
    prefix, origin = "", root
    if base is not None:
        anchor = Path(base).resolve()
        if root == anchor or anchor in root.parents:
            prefix, origin = ("" if root == anchor else root.relative_to(anchor).as_posix() + "/"), anchor
    used = sorted({f.rule_id for f in report.findings})
    rules = []
    for rule_id in used:
        known = RULES.get(rule_id)
        mine = [f for f in report.findings if f.rule_id == rule_id]
        worst = max(f.severity for f in mine)
        sample = mine[0]
        rules.append({"id": rule_id, "name": known.name if known else sample.rule_name,
                      "shortDescription": {"text": known.description if known else sample.rule_name},
                      "defaultConfiguration": {"level": _LEVEL[worst]},
                      "properties": {"tool": sample.tool, "tags": ["security"],
                                     "security-severity": _SCORE[worst]}})
    index = {rule_id: i for i, rule_id in enumerate(used)}
    results = []
    for finding in report.findings:
        uri = prefix + finding.path.replace("!", "/")
        physical: dict[str, Any] = {"artifactLocation": {"uri": uri, "uriBaseId": "SRCROOT"}}
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
        "invocations": [{"executionSuccessful": True}],
        "results": results,
        "originalUriBaseIds": {"SRCROOT": {"uri": origin.as_uri().rstrip("/") + "/"}},
    }]}
