"""The compliance report: content per pack, degradation when checks are missing, and a safe HTML page."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from partyflow.cli.main import app
from partyflow.config import Home
from partyflow.manager.audit import AuditLog
from partyflow.manager.report import build_report, render_html

from .conftest import write_pack


def by_name(report, name: str):
    return next(p for p in report.packs if p.name == name)


def test_each_pack_has_its_provenance_dependencies_and_history(populated: Home) -> None:
    report = build_report(populated)
    assert [p.name for p in report.packs] == ["alpha", "handmade", "beta"]
    alpha = by_name(report, "alpha")
    assert alpha.managed and alpha.enabled and alpha.source_kind == "dir"
    assert alpha.content_hash and alpha.content_hash.startswith("sha256:") and alpha.hash_status == "matches"
    assert alpha.dependencies == [{"requirement": "tinylib==1.0", "name": "tinylib", "installed": "1.0",
                                   "satisfied": True}]
    assert [h["action"] for h in alpha.history] == ["install"] and alpha.installed_by
    beta = by_name(report, "beta")
    assert not beta.enabled and [h["action"] for h in beta.history] == ["install", "disable"]
    handmade = by_name(report, "handmade")
    assert not handmade.managed and handmade.hash_status == "unknown" and handmade.source is None
    assert report.audit["ok"] and report.audit["records"] == 3
    assert report.summary()["unmanaged"] == 1


def test_a_pack_changed_after_install_is_flagged(populated: Home) -> None:
    (populated.custom_nodes / "alpha" / "extra.py").write_text("x = 1\n", encoding="utf-8")
    assert by_name(build_report(populated, scan=False), "alpha").hash_status == "modified"


def test_missing_scanner_and_vulndb_say_so(populated: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "partyflow.security.scanner", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "partyflow.security.vulndb", None)
    report = build_report(populated)
    alpha = by_name(report, "alpha")
    assert alpha.scan["status"] == "not scanned" and alpha.vulnerability_status == "not checked"
    assert any("scanner is not available" in n for n in report.notes)


def test_scan_findings_and_vulnerabilities_are_reported(populated: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    class Result:
        def __init__(self, path: Path) -> None:
            self.path = path

        def to_dict(self) -> dict:
            findings = [{"rule_id": "PF100", "severity": "high", "path": "__init__.py", "line": 3,
                         "message": "exec of decoded data", "tool": "partyflow"}]
            if self.path.name == "alpha":
                findings.append({"rule_id": "GHSA-xxxx", "severity": "medium", "path": "requirements.txt",
                                 "line": 1, "message": "tinylib 1.0 has a known vulnerability", "tool": "osv"})
            return {"max_severity": "high", "counts": {"high": 1}, "findings": findings, "files": 1}

    monkeypatch.setitem(sys.modules, "partyflow.security.scanner", types.SimpleNamespace(scan=Result))
    monkeypatch.setitem(sys.modules, "partyflow.security.vulndb",
                        types.SimpleNamespace(lookup=lambda home, name, version: [
                            {"id": "OSV-1", "package": name, "summary": f"{name} {version} is bad"}]))
    report = build_report(populated)
    alpha = by_name(report, "alpha")
    assert alpha.scan["max_severity"] == "high"
    assert [v.get("rule_id") or v.get("id") for v in alpha.vulnerabilities] == ["GHSA-xxxx", "OSV-1"]
    assert report.summary()["scan_high"] == 3 and report.summary()["vulnerable"] == 1


def test_signed_pack_names_its_signer(tmp_path: Path, home: Home) -> None:
    from partyflow.manager import keys, signing
    from partyflow.manager.packs import PackManager

    keyring = keys.Keyring(home)
    keyring.generate("alice")
    source = write_pack(tmp_path / "src", "signed")
    signing.sign_pack(source, keyring.signer("alice"))
    PackManager(home, verify_timeout=30).install(str(source))
    PackManager(home, verify_timeout=30).install(str(write_pack(tmp_path / "src", "plain")))
    report = build_report(home, scan=False)
    assert by_name(report, "signed").signer["status"] == "signed"
    assert by_name(report, "signed").signer["name"] == "alice"
    assert by_name(report, "plain").signer["status"] == "unsigned"


def test_html_is_self_contained_and_escaped(populated: Home) -> None:
    with AuditLog(populated) as log:
        log.record("install", result="failed", pack="alpha", error='<script>alert("x")</script>',
                   actor="<img src=x onerror=alert(1)>")
    page = render_html(build_report(populated, scan=False))
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page and ' src="' not in page


def test_cli_writes_json_and_html(populated: Home, tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["report", "--home", str(populated.root), "--format", "json", "--no-scan"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert {p["name"] for p in data["packs"]} == {"alpha", "beta", "handmade"} and data["summary"]["packs"] == 3
    out = tmp_path / "report.html"
    done = runner.invoke(app, ["report", "--home", str(populated.root), "--format", "html", "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert "alpha" in out.read_text(encoding="utf-8")
    unwritable = runner.invoke(app, ["report", "--home", str(populated.root), "--no-scan",
                                     "-o", str(tmp_path / "missing" / "report.json")])
    assert unwritable.exit_code == 2 and "cannot write" in unwritable.output
    bad = runner.invoke(app, ["report", "--home", str(populated.root), "--format", "pdf"])
    assert bad.exit_code == 2 and "json or html" in bad.output
