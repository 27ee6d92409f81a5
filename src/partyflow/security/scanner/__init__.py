"""The pack scanner: `scan(path or pack name) -> ScanReport`, never importing or running what it reads.

Rules of our own (`rules/`, one module per technique, catalogued in `catalog.RULES`), bandit as a library for
vulnerable-but-honest code, and an offline OSV database for known vulnerabilities of pinned dependencies.
"""

from __future__ import annotations

from partyflow.security.scanner.catalog import RULES, Rule
from partyflow.security.scanner.engine import ScanError, ScanOptions, scan, scan_source
from partyflow.security.scanner.model import Finding, ScanReport, Severity, SkippedFile
from partyflow.security.scanner.sarif import to_sarif
from partyflow.security.scanner.vulndb import ImportResult, VulnDb, VulnDbError, import_osv

__all__ = ["RULES", "Finding", "ImportResult", "Rule", "ScanError", "ScanOptions", "ScanReport", "Severity",
           "SkippedFile", "VulnDb", "VulnDbError", "import_osv", "scan", "scan_source", "to_sarif"]
