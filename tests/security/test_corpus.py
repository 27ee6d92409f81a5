"""The corpus: every malicious sample flagged high or critical by the rule it exercises, no benign sample flagged
high. The rates are printed (run with -s) and written to the pytest cache for the closing note."""

from __future__ import annotations

import pytest
from tests.security.conftest import BENIGN, BENIGN_EXPECTED, CORPUS, EXPECTED, MALICIOUS

from partyflow.config import Home
from partyflow.security.scanner import ScanOptions, Severity, scan


@pytest.mark.parametrize("name", MALICIOUS)
def test_malicious_sample_is_flagged_high(name: str, vuln_home: Home) -> None:
    report = scan(CORPUS / "malicious" / name, home=vuln_home)
    rule = EXPECTED[name]
    hits = [f for f in report.findings if f.rule_id == rule and f.severity >= Severity.HIGH]
    assert hits, f"{name}: expected {rule} at high or above, got " + \
        ", ".join(f"{f.rule_id}/{f.severity.label}" for f in report.findings)
    assert all(f.line >= 0 and f.path and f.message for f in hits)


@pytest.mark.parametrize("name", BENIGN)
def test_benign_sample_is_not_flagged_high(name: str, vuln_home: Home) -> None:
    report = scan(CORPUS / "benign" / name, home=vuln_home)
    assert not report.at_or_above(Severity.HIGH), [f.to_dict() for f in report.at_or_above(Severity.HIGH)]


@pytest.mark.parametrize("name", BENIGN)
def test_benign_sample_has_exactly_the_expected_findings(name: str, vuln_home: Home) -> None:
    """Each benign sample's findings (our rules) are recorded in expected.toml: a new alarm or a lost note shows up."""
    report = scan(CORPUS / "benign" / name, home=vuln_home, options=ScanOptions(use_bandit=False))
    found = sorted(f"{f.rule_id}/{f.severity.label}/{f.path}" for f in report.findings if f.tool == "partyflow")
    assert found == sorted(BENIGN_EXPECTED[name]), [f.to_dict() for f in report.findings]


def test_every_benign_sample_has_recorded_expectations() -> None:
    assert sorted(BENIGN_EXPECTED) == BENIGN


def test_rates(vuln_home: Home, request: pytest.FixtureRequest) -> None:
    detected = sum(1 for name in MALICIOUS
                   if scan(CORPUS / "malicious" / name, home=vuln_home).at_or_above(Severity.HIGH))
    false_positives = sum(1 for name in BENIGN
                          if scan(CORPUS / "benign" / name, home=vuln_home).at_or_above(Severity.HIGH))
    detection = detected / len(MALICIOUS)
    fp_rate = false_positives / len(BENIGN)
    print(f"\ncorpus: detection {detected}/{len(MALICIOUS)} = {detection:.0%}, "
          f"false positives {false_positives}/{len(BENIGN)} = {fp_rate:.0%}")
    if getattr(request.config, "cache", None) is not None:  # absent under -p no:cacheprovider
        request.config.cache.set("partyflow/scanner_rates", {"detection": detection, "false_positive": fp_rate,
                                                             "malicious": len(MALICIOUS), "benign": len(BENIGN)})
    assert detection == 1.0
    assert fp_rate == 0.0
    assert len(MALICIOUS) >= 25 and len(BENIGN) >= 5
