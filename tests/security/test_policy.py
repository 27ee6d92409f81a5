"""Security levels enforced in one place, and wired into PackManager's install pipeline with audit records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.security.conftest import CORPUS

from partyflow.config import ConfigError, Home
from partyflow.manager.audit import AuditLog
from partyflow.manager.errors import ManagerError
from partyflow.manager.packs import PackManager
from partyflow.security.levels import SecurityLevel
from partyflow.security.policy import Caller, Origin, SecurityPolicy, SignatureStatus, resolve_level
from partyflow.security.scanner import ScanReport, Severity
from partyflow.security.scanner.model import Finding

S, N, NM, W = SecurityLevel.STRONG, SecurityLevel.NORMAL, SecurityLevel.NORMAL_MINUS, SecurityLevel.WEAK
ADMIN, LOCAL_SERVER, REMOTE = Caller(), Caller(trusted=False, loopback=True), Caller(trusted=False, loopback=False)


def _report(severity: Severity) -> ScanReport:
    return ScanReport("t", "t", findings=[Finding("a.py", 1, "PF101", severity, "x")])


def test_sources_per_level_and_caller() -> None:
    def ok(level: SecurityLevel, origin: Origin, caller: Caller) -> bool:
        return SecurityPolicy(level).source(origin, caller).allowed

    assert [ok(level, Origin.GIT, ADMIN) for level in (S, N, NM, W)] == [False, True, True, True]
    assert [ok(level, Origin.CATALOG, ADMIN) for level in (S, N, NM, W)] == [True] * 4
    assert [ok(level, Origin.PATH, LOCAL_SERVER) for level in (S, N, NM, W)] == [False, False, True, True]
    assert [ok(level, Origin.CATALOG, LOCAL_SERVER) for level in (S, N, NM, W)] == [False, True, True, True]
    assert not ok(N, Origin.ARCHIVE, REMOTE) and not ok(NM, Origin.GIT, REMOTE)
    assert [ok(level, Origin.PIP, ADMIN) for level in (S, N, NM, W)] == [False, False, True, True]


def test_scan_thresholds_and_force() -> None:
    high, critical = _report(Severity.HIGH), _report(Severity.CRITICAL)
    assert not SecurityPolicy(N).scan(high, ADMIN).allowed
    assert SecurityPolicy(N).scan(high, ADMIN, force=True).allowed
    assert not SecurityPolicy(N).scan(high, LOCAL_SERVER, force=True).allowed
    assert not SecurityPolicy(S).scan(high, ADMIN, force=True).allowed
    assert SecurityPolicy(W).scan(high, ADMIN).allowed and not SecurityPolicy(W).scan(critical, ADMIN).allowed
    assert SecurityPolicy(N).scan(_report(Severity.MEDIUM), ADMIN).allowed


def test_signatures() -> None:
    unsigned, invalid = SignatureStatus("unsigned"), SignatureStatus("invalid", reason="hash mismatch")
    assert not SecurityPolicy(S).signature(unsigned, ADMIN).allowed
    assert SecurityPolicy(N).signature(unsigned, ADMIN).allowed
    assert not SecurityPolicy(W).signature(invalid, ADMIN).allowed
    assert SecurityPolicy(S).signature(SignatureStatus("signed", signer="k"), ADMIN).allowed


def test_level_sources_in_order(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_level(home) is N
    home.config_file.write_text('[manager]\nsecurity_level = "weak"\n')
    assert resolve_level(home) is W
    home.config_file.write_text('security_level = "normal-"\n[manager]\nsecurity_level = "weak"\n')
    assert resolve_level(home) is NM
    monkeypatch.setenv("PARTYFLOW_SECURITY_LEVEL", "strong")
    assert resolve_level(home) is S
    assert resolve_level(home, "weak") is W
    with pytest.raises(ConfigError, match="must be one of strong, normal, normal-, weak"):
        resolve_level(home, "lax")


def _audit(home: Home) -> list[dict]:
    with AuditLog(home) as log:
        return [{"result": e.result, "pack": e.pack, "details": json.loads(e.details) if e.details else None}
                for e in log.entries()]


def test_install_refuses_a_malicious_pack_until_forced(home: Home, tmp_path: Path) -> None:
    source = tmp_path / "beacon"
    shutil.copytree(CORPUS / "malicious" / "m05_import_time_beacon", source)
    with pytest.raises(ManagerError, match="security scan refused it") as refused:
        PackManager(home).install(str(source))
    assert refused.value.user_error and "--force" in (refused.value.hint or "")
    assert not (home.custom_nodes / "beacon").exists()
    entry = _audit(home)[-1]
    assert entry["result"] == "refused" and entry["details"]["scan"]["max_severity"] == "high"
    helper = tmp_path / "helper"  # high findings, but nothing runs when its __init__ is imported
    shutil.copytree(CORPUS / "malicious" / "m10_write_system_path", helper)
    forced = PackManager(home, verify_timeout=30).install(str(helper), force=True)
    assert forced.changed and forced.security is not None and forced.security["forced"] is True
    assert _audit(home)[-1]["details"]["security"]["forced"] is True


def test_forced_and_clean_installs_record_the_scan(home: Home, tmp_path: Path) -> None:
    source = tmp_path / "prompt_tools"
    shutil.copytree(CORPUS / "benign" / "prompt_tools_node", source)
    result = PackManager(home, verify_timeout=30).install(str(source))
    assert result.security is not None and result.security["scan"]["counts"]["high"] == 0
    entry = _audit(home)[-1]
    assert entry["result"] == "ok" and entry["details"]["security"]["signature"]["state"] == "unsigned"
    assert entry["details"]["security"]["scan"]["files"] >= 3


def test_server_and_strong_refuse_non_catalog(home: Home, tmp_path: Path) -> None:
    source = tmp_path / "prompt_tools"
    shutil.copytree(CORPUS / "benign" / "prompt_tools_node", source)
    with pytest.raises(ManagerError, match="not allowed at security level 'normal'"):
        PackManager(home, trusted=False).install(str(source))
    with pytest.raises(ManagerError, match="not allowed at security level 'strong'"):
        PackManager(home, security_level="strong").install(str(source))
    assert not (home.custom_nodes / "prompt_tools").exists()


def test_cli_update_is_scanned_and_can_be_forced(home: Home, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from partyflow.cli.main import app

    source = tmp_path / "tools"
    shutil.copytree(CORPUS / "benign" / "prompt_tools_node", source)
    PackManager(home, verify_timeout=30).install(str(source))
    shutil.rmtree(source)  # the next version of the same folder brings high findings (nothing runs at import)
    shutil.copytree(CORPUS / "malicious" / "m10_write_system_path", source)

    def update(*extra: str) -> dict:
        result = CliRunner().invoke(app, ["--home", str(home.root), "nodes", "update", "tools", "--json", *extra])
        return {"code": result.exit_code, **json.loads(result.stdout)}

    refused = update()
    assert refused["code"] == 2 and "security scan refused it" in refused["error"] and "--force" in refused["hint"]
    installed = home.custom_nodes / "tools"
    assert (installed / "nodes.py").exists() and not (installed / "setup_helper.py").exists()  # the old version
    assert _audit(home)[-1]["result"] == "refused"
    forced = update("--force")
    assert forced["code"] == 0 and forced["changed"] and forced["security"]["forced"] is True
    assert _audit(home)[-1]["details"]["security"]["forced"] is True


def test_the_manager_computes_a_pack_signature_and_the_policy_judges_it(tmp_path: Path) -> None:
    """The policy never checks signatures itself (it must not import the manager): the manager's
    `pack_signature_status` does, and `enforce_staged` takes the result. A signed container stands in for an
    unsigned pack, never for a broken one; a refusal is a ManagerError (exit code 2) for every interface."""
    from partyflow.manager.keys import Keyring
    from partyflow.manager.signing import pack_signature_status, sign_pack
    from partyflow.security.policy import PolicyRefusal, enforce_staged

    home = Home(tmp_path / "home")
    ring = Keyring(home)
    ring.generate("alice")
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    assert pack_signature_status(pack, home).state == "unsigned"
    assert pack_signature_status(pack / "__init__.py", home).reason == "single-file packs carry no signature"
    sign_pack(pack, ring.signer())
    signed = pack_signature_status(pack, home)
    assert signed.state == "signed" and signed.signer is not None and signed.signer.startswith("alice (")

    def gate(status: SignatureStatus, container: SignatureStatus | None = None) -> dict:
        return enforce_staged(SecurityPolicy(S), pack, home=home, caller=ADMIN, origin=Origin.CATALOG,
                              pack_signature=status, name="pack", signature=container)

    assert gate(signed)["signature"]["state"] == "signed"
    (pack / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {'X': object}\n")
    broken = pack_signature_status(pack, home)
    assert broken.state == "invalid" and "changed after signing" in broken.reason
    bundle = SignatureStatus("signed", signer="bob (k)", reason="in a bundle signed by bob (k)")
    with pytest.raises(ManagerError) as refused:
        gate(broken, bundle)
    assert isinstance(refused.value, PolicyRefusal) and refused.value.user_error and refused.value.pack == "pack"
    assert refused.value.details["signature"]["state"] == "invalid"
    (pack / "partyflow-signature.json").unlink()
    unsigned = pack_signature_status(pack, home)
    with pytest.raises(PolicyRefusal, match="refuses unsigned packs"):
        gate(unsigned)
    assert gate(unsigned, bundle)["signature"]["signer"] == "bob (k)"
