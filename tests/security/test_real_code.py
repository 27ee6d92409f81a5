"""The benign real-code set: popular libraries scanned where the test environment installed them, and partyflow's
own scanner. None may have a finding at high or above; the expected medium findings are recorded per package
(corpus/real_code.toml) and checked when the installed version is the recorded one."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import tomllib
from pathlib import Path

import pytest
from tests.security.conftest import CORPUS

import partyflow.security.scanner as scanner_package
from partyflow.security.scanner import ScanOptions, Severity, scan

REAL = tomllib.loads((CORPUS / "real_code.toml").read_text())["package"]
_OPTIONS = ScanOptions(use_bandit=False, use_vulndb=False)   # bandit never reports above medium


def _installed(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"{module} is a dependency of partyflow[dev,gguf] and must be installed"
    return Path(spec.origin).parent


@pytest.mark.parametrize("entry", REAL, ids=[e["import"] for e in REAL])
def test_real_library_has_no_high_finding(entry: dict[str, object]) -> None:
    report = scan(_installed(str(entry["import"])), options=_OPTIONS)
    assert report.files_scanned > 0
    assert not report.at_or_above(Severity.HIGH), [f.to_dict() for f in report.at_or_above(Severity.HIGH)]
    if importlib.metadata.version(str(entry["distribution"])) == entry["version"]:
        medium = sorted({f"{f.rule_id} {f.path}" for f in report.findings
                         if f.severity == Severity.MEDIUM and f.rule_id != "PF112"})
        assert medium == sorted(entry["medium"])  # type: ignore[arg-type]


def test_partyflow_scanner_rules_are_not_flagged() -> None:
    """The scanner's own rule lists name miners, pools, packers and credential stores as data to look for."""
    report = scan(Path(scanner_package.__file__).parent, options=_OPTIONS)
    assert report.files_scanned >= 15
    assert not report.at_or_above(Severity.MEDIUM), [f.to_dict() for f in report.at_or_above(Severity.MEDIUM)]
