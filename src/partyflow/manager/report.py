"""The compliance report: what is installed in a home, where it came from, who installed it, and what checks say.

For each pack: version and source (from provenance), whether its files still match the content hash recorded at
install (a changed pack is the first thing an auditor asks about), the signer (the keyring's verdict on the
pack's signature file), the security scan, known vulnerabilities, its requirements next to the versions
installed in the environment it runs in (its own venv when isolated), and its history from the audit log, whose
hash chain is verified too. Parts that another module provides degrade to a stated "not available" when that
module is missing, never to a silent blank: an empty column would read as "clean".

`build_report` returns plain data; `render_json` and `render_html` present it. The HTML is one self-contained file
(inline CSS, no scripts, no external assets) with every value escaped, so a hostile pack name or audit message
cannot inject markup into the page an auditor opens.
"""

from __future__ import annotations

import html
import importlib
import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from partyflow import __version__
from partyflow.config import Home
from partyflow.manager.packs import InstalledPack, PackManager
from partyflow.manager.provenance import tree_hash

__all__ = ["ComplianceReport", "PackReport", "build_report", "render_html", "render_json"]


@dataclass
class PackReport:
    name: str
    enabled: bool
    managed: bool
    path: str
    version: str | None = None
    source: str | None = None
    source_kind: str | None = None
    catalog: str | None = None
    installed_at: str | None = None
    updated_at: str | None = None
    installed_by: str | None = None
    content_hash: str | None = None
    hash_status: str = "unknown"              # matches | modified | unknown (not managed)
    isolated: bool = False
    environment: str | None = None            # the python whose packages the pack uses
    signer: dict[str, Any] = field(default_factory=dict)
    scan: dict[str, Any] = field(default_factory=dict)
    vulnerabilities: list[dict[str, Any]] = field(default_factory=list)
    vulnerability_status: str = "not checked"
    dependencies: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ComplianceReport:
    generated_at: str
    home: str
    partyflow: str
    security_level: str
    audit: dict[str, Any]
    packs: list[PackReport]
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"packs": len(self.packs), "enabled": sum(p.enabled for p in self.packs),
                "unmanaged": sum(not p.managed for p in self.packs),
                "modified": sum(p.hash_status == "modified" for p in self.packs),
                "unsigned": sum(p.signer.get("status") != "signed" for p in self.packs),
                "scan_high": sum(p.scan.get("max_severity") in ("high", "critical") for p in self.packs),
                "vulnerable": sum(bool(p.vulnerabilities) for p in self.packs),
                "isolated": sum(p.isolated for p in self.packs)}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = self.summary()
        return data


# --- gathering ---------------------------------------------------------------------------------------------

def build_report(home: Home, *, scan: bool = True) -> ComplianceReport:
    """Collect the report for `home`; `scan=False` skips the scanner (it reads every file of every pack)."""
    manager = PackManager(home)
    notes: list[str] = []
    history = _audit_history(home)
    packs = [_pack_report(home, pack, history.get(pack.name, []), scan, notes) for pack in manager.installed()]
    return ComplianceReport(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"), home=str(home.root), partyflow=__version__,
        security_level=_security_level(home), audit=_audit_state(home), packs=packs,
        notes=sorted(set(notes)))


def _pack_report(home: Home, pack: InstalledPack, history: list[dict[str, Any]], scan: bool,
                 notes: list[str]) -> PackReport:
    record = pack.record
    entry = PackReport(name=pack.name, enabled=pack.enabled, managed=record is not None, path=str(pack.path),
                       history=history)
    installs = [h for h in history if h["action"] in ("install", "update") and h["result"] == "ok"]
    entry.installed_by = installs[-1]["actor"] if installs else None
    if record is not None:
        entry.version = (f"{record.version or ''} {record.commit[:12]}".strip() if record.commit
                         else record.version)
        entry.source, entry.source_kind = record.source.describe(), record.source.kind
        entry.catalog, entry.installed_at, entry.updated_at = record.catalog, record.installed_at, record.updated_at
        entry.content_hash = record.content_hash
        entry.hash_status = "matches" if tree_hash(pack.path) == record.content_hash else "modified"
        entry.isolated = bool(getattr(record, "isolated", False))
    entry.environment = _environment(home, pack.name, entry.isolated)
    entry.signer = _vouched(_signer(home, pack.path, notes), installs, entry.hash_status)
    entry.scan = _scan(pack.path, notes) if scan else {"status": "not scanned", "detail": "scanning was skipped"}
    entry.dependencies = _dependencies(pack.path, entry.environment, notes)
    entry.vulnerabilities, entry.vulnerability_status = _vulnerabilities(home, entry, notes)
    return entry


def _environment(home: Home, name: str, isolated: bool) -> str:
    if isolated:
        from partyflow.nodes.isolation.environment import python_of, venv_dir

        return str(python_of(venv_dir(home.root, name)))
    try:
        from partyflow.manager.dependencies import target_python

        return target_python(home)
    except Exception:  # a broken config.toml must not stop the report; the host's python is the default
        return sys.executable


def _optional(module: str) -> Any:
    """Another engineer's module, or None when this partyflow does not have it (the report says so)."""
    try:
        return importlib.import_module(module)
    except ImportError:  # absent, or present without its own dependencies: either way not usable here
        return None


def _signer(home: Home, path: Path, notes: list[str]) -> dict[str, Any]:
    signing, keys = _optional("partyflow.manager.signing"), _optional("partyflow.manager.keys")
    if signing is None or keys is None or not path.is_dir():
        if signing is None or keys is None:
            notes.append("signature checks are not available in this partyflow: every pack shows as unsigned")
        return {"status": "unsigned", "detail": "no signature checked"}
    try:
        verified = signing.verify_pack(path, keys.Keyring(home))
    except signing.SignatureError as exc:
        reason = getattr(getattr(exc, "reason", None), "value", "unsigned")
        return {"status": str(reason), "detail": exc.message}
    key = verified.key
    return {"status": "signed", "key_id": key.key_id, "name": key.name, "detail": f"signed by {key.name}"}


def _scan(path: Path, notes: list[str]) -> dict[str, Any]:
    scanner = _optional("partyflow.security.scanner")
    scan = getattr(scanner, "scan", None)
    if scan is None:
        notes.append("the security scanner is not available in this partyflow: packs are marked 'not scanned'")
        return {"status": "not scanned", "detail": "scanner not available"}
    try:
        result = scan(path)
    except Exception as exc:  # one pack the scanner chokes on must not hide the others
        return {"status": "scan failed", "detail": f"{type(exc).__name__}: {exc}"}
    data = result.to_dict() if callable(getattr(result, "to_dict", None)) else {}
    findings = [f for f in data.get("findings", []) if isinstance(f, dict)]
    return {"status": "scanned", "max_severity": data.get("max_severity"), "counts": data.get("counts", {}),
            "findings": findings[:50], "files": data.get("files"), "skipped": data.get("skipped", 0)}


def _dependencies(path: Path, python: str | None, notes: list[str]) -> list[dict[str, Any]]:
    if not path.is_dir():
        return []
    from partyflow.manager.dependencies import DependencyError, installed_packages, read_requirements

    try:
        requirements, _ = read_requirements(path)
    except DependencyError as exc:
        return [{"requirement": None, "error": exc.message}]
    if not requirements:
        return []
    try:
        installed = installed_packages(python or sys.executable)
    except Exception as exc:  # the environment is gone (an isolated pack's venv after a restore)
        notes.append(f"cannot read the environment {python}: {exc}")
        installed = {}
    rows = []
    for line in requirements:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            rows.append({"requirement": line, "name": None, "installed": None, "satisfied": False})
            continue
        have = installed.get(canonicalize_name(req.name))
        ok = have is not None and (not req.specifier or req.specifier.contains(have, prereleases=True))
        rows.append({"requirement": line, "name": canonicalize_name(req.name), "installed": have, "satisfied": ok})
    return rows


def _vulnerabilities(home: Home, entry: PackReport, notes: list[str]) -> tuple[list[dict[str, Any]], str]:
    """Known vulnerabilities: the scanner's OSV findings, plus the offline vulnerability database asked about each
    installed dependency version when that module (`partyflow.security.vulndb`, `lookup(home, name, version)`)
    exists."""
    found = [f for f in entry.scan.get("findings", []) if f.get("tool") == "osv"]
    vulndb = _optional("partyflow.security.vulndb")
    lookup = getattr(vulndb, "lookup", None)
    if lookup is None:
        if entry.scan.get("status") == "scanned":
            return found, "checked by the scan"
        notes.append("no vulnerability database is available: known vulnerabilities were not checked")
        return found, "not checked"
    for dep in entry.dependencies:
        if dep.get("name") and dep.get("installed"):
            try:
                for item in lookup(home, dep["name"], dep["installed"]) or ():
                    found.append(dict(item) if isinstance(item, dict) else {"id": str(item), "package": dep["name"]})
            except Exception as exc:  # a corrupt database: say so, never "none known"
                return found, f"database error: {exc}"
    return found, "checked against the vulnerability database"


def _audit_history(home: Home) -> dict[str, list[dict[str, Any]]]:
    if not home.state_db.exists():
        return {}
    from partyflow.manager.audit import AuditLog

    grouped: dict[str, list[dict[str, Any]]] = {}
    with AuditLog(home) as log:
        for e in log.entries():
            if e.pack:
                grouped.setdefault(e.pack, []).append(
                    {"id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "result": e.result,
                     "version": e.version, "content_hash": e.content_hash, "source": e.source, "error": e.error,
                     "signature": _recorded_signature(e.details)})
    return grouped


def _recorded_signature(details: str | None) -> dict[str, Any] | None:
    """The signature verdict the security gate recorded when the pack was installed (see policy.enforce_staged)."""
    try:
        data = json.loads(details) if details else None
    except json.JSONDecodeError:
        return None
    signature = data.get("security", {}).get("signature") if isinstance(data, dict) else None
    return signature if isinstance(signature, dict) else None


def _vouched(signer: dict[str, Any], installs: list[dict[str, Any]], hash_status: str | None) -> dict[str, Any]:
    """A pack without a signature of its own that came out of a signed bundle: the bundle's signer vouched for
    exactly the files installed then, so the report names them while the files still match that install."""
    if signer.get("status") == "signed" or not installs or hash_status != "matches":
        return signer
    recorded = installs[-1].get("signature") or {}
    if recorded.get("state") != "signed":
        return signer
    who = str(recorded.get("signer") or "")
    return {"status": "signed", "name": who.split(" (")[0] or None, "key_id": None,
            "detail": f"{recorded.get('reason') or 'signed'} (audit record {installs[-1]['id']}); the files still "
                      "match what was installed"}


def _audit_state(home: Home) -> dict[str, Any]:
    if not home.state_db.exists():
        return {"ok": True, "records": 0, "detail": "no audit log yet"}
    from partyflow.manager.audit import AuditLog

    with AuditLog(home) as log:
        outcome = log.verify()
    return {"ok": outcome.ok, "records": outcome.records, "head": outcome.head,
            "first_bad_id": outcome.first_bad_id, "detail": outcome.reason or "hash chain intact"}


def _security_level(home: Home) -> str:
    try:
        from partyflow.manager.security import security_level

        return security_level(home).value
    except Exception as exc:  # an invalid level in config.toml is itself worth reporting
        return f"invalid ({exc})"


# --- presenting --------------------------------------------------------------------------------------------

def render_json(report: ComplianceReport) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;color:#1b1f24;
padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
h3{font-size:1rem;margin:1rem 0 .3rem}.meta{color:#57606a}
table{border-collapse:collapse;width:100%;margin:.4rem 0}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f6f8fa}code{font-size:12px;word-break:break-all}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.warn{color:#9a6700;font-weight:600}
.muted{color:#57606a}.cards{display:flex;flex-wrap:wrap;gap:.6rem}.card{border:1px solid #d0d7de;border-radius:6px;
padding:.5rem .9rem;min-width:8rem}.card b{display:block;font-size:1.4rem}
section.pack{border:1px solid #d0d7de;border-radius:6px;padding:.2rem 1rem 1rem;margin:1rem 0}
ul.notes{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:.6rem 1.6rem}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _badge(text: str, good: bool | None) -> str:
    style = "muted" if good is None else "ok" if good else "bad"
    return f'<span class="{style}">{_e(text)}</span>'


def _table(headers: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: ComplianceReport) -> str:
    """One self-contained HTML page; cells are escaped here, badges build on escaped text only."""
    summary = report.summary()
    cards = "".join(f'<div class="card"><b>{_e(v)}</b>{_e(k.replace("_", " "))}</div>' for k, v in summary.items())
    audit = report.audit
    audit_line = (_badge(f"intact ({audit.get('records')} records)", True) if audit.get("ok")
                  else _badge(f"BROKEN at record {audit.get('first_bad_id')}: {audit.get('detail')}", False))
    overview = _table(
        ["pack", "state", "version", "source", "signer", "scan", "vulnerabilities", "files"],
        [[f'<a href="#pack-{_e(p.name)}">{_e(p.name)}</a>' + (" (isolated)" if p.isolated else ""),
          _e("enabled" if p.enabled else "disabled"), _e(p.version or ""), _e(p.source or "not managed"),
          _badge(p.signer.get("name") or p.signer.get("status", "unsigned"), p.signer.get("status") == "signed"),
          _scan_badge(p.scan), _vuln_badge(p),
          _badge(p.hash_status, None if p.hash_status == "unknown" else p.hash_status == "matches")]
         for p in report.packs], "No packs are installed.")
    notes = ("<ul class=\"notes\">" + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>"
             if report.notes else "")
    sections = "".join(_pack_section(p) for p in report.packs)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>partyflow compliance report — {_e(report.home)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Compliance report</h1><p class=\"meta\">home <code>{_e(report.home)}</code> · generated "
        f"{_e(report.generated_at)} · partyflow {_e(report.partyflow)} · security level "
        f"<b>{_e(report.security_level)}</b> · audit log {audit_line}</p>"
        f"<div class=\"cards\">{cards}</div>{notes}<h2>Installed packs</h2>{overview}{sections}"
        "</body></html>\n")


def _vuln_badge(p: PackReport) -> str:
    if p.vulnerabilities:
        return _badge(f"{len(p.vulnerabilities)} known", False)
    checked = p.vulnerability_status.startswith("checked")
    return _badge("none known" if checked else p.vulnerability_status, True if checked else None)


def _scan_badge(scan: dict[str, Any]) -> str:
    if scan.get("status") != "scanned":
        return _badge(scan.get("status", "not scanned"), None)
    worst = scan.get("max_severity")
    return _badge(f"worst: {worst}" if worst else "no findings", worst not in ("high", "critical"))


def _signer_text(signer: dict[str, Any]) -> str:
    status, detail = str(signer.get("status", "unsigned")), str(signer.get("detail") or "")
    return detail if detail.startswith(status) else f"{status}: {detail}" if detail else status


def _scan_text(scan: dict[str, Any]) -> str:
    if scan.get("status") != "scanned":
        return f"{scan.get('status')}: {scan.get('detail', '')}".rstrip(": ")
    counts = ", ".join(f"{n} {s}" for s, n in (scan.get("counts") or {}).items() if n) or "no findings"
    return f"scanned {scan.get('files') or '?'} files: {counts}"


def _pack_section(p: PackReport) -> str:
    facts = [("source", p.source or "not installed by partyflow"), ("catalog name", p.catalog),
             ("version", p.version), ("path", p.path), ("content hash", p.content_hash),
             ("files vs. hash", p.hash_status), ("installed", p.installed_at), ("updated", p.updated_at),
             ("installed by", p.installed_by), ("environment", p.environment + (" (own venv)" if p.isolated else "")
                                                if p.environment else None),
             ("signer", _signer_text(p.signer)), ("scan", _scan_text(p.scan))]
    rows = "".join(f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>" for k, v in facts if v)
    deps = _table(["requirement", "installed", "satisfied"],
                  [[_e(d.get("requirement") or d.get("error")), _e(d.get("installed") or "not installed"),
                    _badge("yes" if d.get("satisfied") else "no", bool(d.get("satisfied")))]
                   for d in p.dependencies], "No declared Python dependencies.")
    findings = _table(["severity", "rule", "where", "message"],
                      [[_e(f.get("severity")), _e(f.get("rule_id")), _e(f"{f.get('path')}:{f.get('line')}"),
                        _e(f.get("message"))] for f in p.scan.get("findings", [])],
                      "No findings." if p.scan.get("status") == "scanned" else "Not scanned.")
    vulns = _table(["id", "package", "details"],
                   [[_e(v.get("id") or v.get("rule_id")), _e(v.get("package") or v.get("path")),
                     _e(v.get("summary") or v.get("message"))] for v in p.vulnerabilities],
                   f"None ({p.vulnerability_status}).")
    history = _table(["#", "when", "who", "action", "result", "version", "error"],
                     [[_e(h["id"]), _e(h["at"][:19]), _e(h["actor"]), _e(h["action"]),
                       _badge(h["result"], h["result"] in ("ok", "unchanged")), _e(h.get("version")),
                       _e(h.get("error"))] for h in p.history], "No audit records for this pack.")
    return (f'<section class="pack" id="pack-{_e(p.name)}"><h2>{_e(p.name)}</h2><table>{rows}</table>'
            f"<h3>Dependencies</h3>{deps}<h3>Scan findings</h3>{findings}<h3>Known vulnerabilities</h3>{vulns}"
            f"<h3>History</h3>{history}</section>")
