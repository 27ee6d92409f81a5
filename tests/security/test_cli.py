"""`partyflow scan` and `partyflow vulndb import`: formats and exit codes."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from tests.security.conftest import CORPUS
from typer.testing import CliRunner

from partyflow.cli.main import app

runner = CliRunner()


def test_exit_codes_and_formats(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "home")]
    clean = runner.invoke(app, [*home, "scan", str(CORPUS / "benign" / "api_client_node")])
    assert clean.exit_code == 0, clean.output
    bad = runner.invoke(app, [*home, "scan", str(CORPUS / "malicious" / "m07_ssh_key_theft"), "--format", "json"])
    assert bad.exit_code == 1
    data = json.loads(bad.stdout)
    assert data["max_severity"] == "critical" and data["findings"][0]["rule_id"] == "PF106"
    assert {"rule_id", "severity", "path", "line", "message"} <= set(data["findings"][0])
    lenient = runner.invoke(app, [*home, "scan", str(CORPUS / "malicious" / "m16_torch_load_unsafe"),
                                  "--fail-on", "critical"])
    assert lenient.exit_code == 0
    sarif = runner.invoke(app, [*home, "scan", str(CORPUS / "malicious" / "m18_crypto_miner"), "-f", "sarif"])
    run = json.loads(sarif.stdout)["runs"][0]
    assert sarif.exit_code == 1 and run["results"][0]["level"] == "error" and run["tool"]["driver"]["rules"]
    assert runner.invoke(app, [*home, "scan", str(tmp_path / "nope")]).exit_code == 2
    assert runner.invoke(app, [*home, "scan", "no_such_pack"]).exit_code == 2
    assert runner.invoke(app, [*home, "scan", ".", "--fail-on", "severe"]).exit_code == 2


def test_scan_an_installed_pack_by_name(tmp_path: Path) -> None:
    pack = tmp_path / "home" / "custom_nodes" / "helper"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text("import os\nos.system('xmrig --donate-level 1')\n")
    result = runner.invoke(app, ["--home", str(tmp_path / "home"), "scan", "helper"])
    assert result.exit_code == 1 and "PF110" in result.stdout


def test_vulndb_import(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "home")]
    export = tmp_path / "all.zip"
    with zipfile.ZipFile(export, "w") as archive:
        archive.write(CORPUS / "osv" / "CORPUS-2024-0001.json", "CORPUS-2024-0001.json")
        archive.writestr("GO-1.json", json.dumps({"id": "GO-1", "affected": [
            {"package": {"ecosystem": "Go", "name": "x"}}]}))
    ok = runner.invoke(app, [*home, "vulndb", "import", str(export)])
    assert ok.exit_code == 0 and "imported 1 PyPI records" in ok.stdout
    scanned = runner.invoke(app, [*home, "scan", str(CORPUS / "malicious" / "m29_known_vulnerable_pin")])
    assert scanned.exit_code == 1 and "CORPUS-2024-0001" in scanned.stdout
    corrupt = tmp_path / "broken.zip"
    corrupt.write_bytes(export.read_bytes()[:40])
    refused = runner.invoke(app, [*home, "vulndb", "import", str(corrupt)])
    assert refused.exit_code == 2 and "nothing was imported" in " ".join(refused.stderr.split())
    as_json = runner.invoke(app, [*home, "vulndb", "import", str(corrupt), "--yes", "--json"])
    error = json.loads(as_json.stdout)
    assert as_json.exit_code == 2 and error["ok"] is False and error["error"] and "nothing" in error["hint"]
    not_osv = tmp_path / "x.json"
    not_osv.write_text('{"hello": 1}')
    message = runner.invoke(app, [*home, "vulndb", "import", str(not_osv)]).stderr
    assert "not an OSV record" in " ".join(message.split())
    still = runner.invoke(app, [*home, "scan", str(CORPUS / "malicious" / "m29_known_vulnerable_pin")])
    assert still.exit_code == 1  # the earlier database survived the refused imports
    again = runner.invoke(app, [*home, "vulndb", "import", str(export), "--yes", "--json"])
    result = json.loads(again.stdout)
    assert again.exit_code == 0 and result["ok"] is True and result["pypi_records"] == 1 and result["records"] == 2
    assert Path(result["path"]).is_file()
