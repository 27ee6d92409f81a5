"""The security policy judges a whole bundle before it changes anything: signature, source, a scan of every pack."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from partyflow.config import Home
from partyflow.manager.audit import AuditLog
from partyflow.manager.bundles import create_bundle, install_bundle
from partyflow.manager.dependencies import installed_packages
from partyflow.manager.errors import ManagerError
from partyflow.manager.packs import PackManager
from partyflow.manager.report import build_report

from .conftest import cli, cli_json

CORPUS = Path(__file__).resolve().parents[1] / "security" / "corpus"


def packs_of(home: Home) -> set[str]:
    return {p.name for p in PackManager(home).installed()}


def bundle_installs(home: Home) -> list[dict[str, object]]:
    with AuditLog(home) as log:
        return [{"result": e.result, "error": e.error or "", "details": json.loads(e.details or "{}")}
                for e in log.entries() if e.action == "bundle-install"]


def test_a_refused_pack_stops_the_bundle_before_its_wheels_or_other_packs(maker: Home, target: Home, venv: str,
                                                                          sources: Path, tmp_path: Path) -> None:
    shutil.copytree(CORPUS / "malicious" / "m07_ssh_key_theft", sources / "thief")
    # `one` (with wheels) comes first: checking pack by pack would install its wheels and itself, then stop
    bundle = create_bundle(maker, tmp_path / "mixed.pfb", packs=[str(sources / "one"), str(sources / "thief")]).path

    with pytest.raises(ManagerError, match="security scan refused it") as caught:
        install_bundle(bundle, target)
    assert caught.value.pack == "thief" and "PF106" in caught.value.message
    assert not packs_of(target)
    assert "alpha" not in installed_packages(venv) and "beta" not in installed_packages(venv)
    refusal = bundle_installs(target)[-1]
    assert refusal["result"] == "refused" and refusal["details"]["scan"]["max_severity"] == "critical"

    # the CLI refuses while planning, before asking anything, and the audit log keeps that refusal too
    failed = cli_json("bundle", "install", str(bundle), "--yes", home=target, code=2)
    assert "security scan refused it" in failed["error"] and "--force" in failed["hint"]
    assert len(bundle_installs(target)) == 2 and not packs_of(target)
    plan = cli_json("bundle", "install", str(bundle), "--dry-run", "--force", home=target)
    assert "forced past" in plan["security"]["thief"]["scan_decision"]
    assert len(bundle_installs(target)) == 2  # a dry run changes nothing and is no action

    result = install_bundle(bundle, target, force=True)  # an administrator's explicit, audited choice
    assert {p.name for p in result.packs} == {"one", "thief"} and packs_of(target) == {"one", "thief"}
    with AuditLog(target) as log:
        thief = [e for e in log.entries() if e.action == "install" and e.pack == "thief"][-1]
    assert thief.result == "ok" and json.loads(thief.details or "{}")["security"]["forced"] is True


def test_strong_takes_signed_bundles_and_refuses_unsigned_ones(maker: Home, target: Home, venv: str,
                                                               sources: Path, tmp_path: Path) -> None:
    signed = create_bundle(maker, tmp_path / "signed.pfb", packs=[str(sources / "two")]).path
    unsigned = create_bundle(maker, tmp_path / "unsigned.pfb", packs=[str(sources / "three")], unsigned=True).path

    # strong refuses an archive or a folder given directly ...
    with pytest.raises(ManagerError, match="not allowed at security level 'strong'"):
        PackManager(target, security_level="strong").install(str(sources / "two"))
    # ... and even an explicitly allowed unsigned bundle, before its wheels are touched
    done = cli("--security-level", "strong", "bundle", "install", str(unsigned), "--allow-unsigned", "--yes",
               home=target)
    assert done.returncode == 2 and "refuses unsigned" in done.stderr and "Traceback" not in done.stderr
    assert not packs_of(target) and "gamma" not in installed_packages(venv)
    assert bundle_installs(target)[-1]["result"] == "refused"

    # a bundle whose manifest a trusted key signed vouches for its packs as a signed catalog does
    done = cli("--security-level", "strong", "bundle", "install", str(signed), "--yes", home=target)
    assert done.returncode == 0, done.stderr
    assert packs_of(target) == {"two"}
    record = PackManager(target).info("two").record
    assert record is not None and record.source.kind == "archive"
    with AuditLog(target) as log:
        install = [e for e in log.entries() if e.action == "install" and e.pack == "two"][-1]
    security = json.loads(install.details or "{}")["security"]
    assert security["security_level"] == "strong" and security["origin"] == "catalog"
    assert security["signature"]["state"] == "signed" and "release" in security["signature"]["signer"]

    # the compliance report names the bundle's signer for that pack while its files match what was installed
    signer = build_report(target, scan=False).packs[0].signer
    assert signer["status"] == "signed" and signer["name"] == "release" and "bundle" in signer["detail"]
    (target.custom_nodes / "two" / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    assert build_report(target, scan=False).packs[0].signer["status"] != "signed"
