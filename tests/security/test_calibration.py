"""Each pattern measured as a false high in real code (httpx, ComfyUI-Manager, ComfyUI LLM Party, partyflow's own
rules) stays below high, and the attack it resembles stays high. The sources are written for the tests."""

from __future__ import annotations

from pathlib import Path

from partyflow.security.scanner import ScanOptions, Severity, scan, scan_source

_OPTIONS = ScanOptions(use_bandit=False, use_vulndb=False)


def worst(source: str, rule: str, name: str = "m.py") -> Severity | None:
    return max((f.severity for f in scan_source(source, name) if f.rule_id == rule), default=None)


def test_chr_character_tables_are_not_obfuscation() -> None:
    table = 'SAFE = "".join([chr(i) for i in range(0x20, 0x7F) if i not in (0x20, 0x22, 0x3C)])\n'
    assert worst(table, "PF102") is None
    assert worst('CTRL = "".join(map(chr, range(32)))\n', "PF102") is None
    symbols = 'BOX = "".join(chr(c) for c in (0x2500, 0x2502, 0x250C, 0x2510, 0x2514, 0x2518))\n'
    assert worst(symbols, "PF102") is Severity.LOW


def test_words_spelled_with_chr_are_obfuscation() -> None:
    hidden = 'fn = getattr(__import__("os"), "".join(map(chr, [115, 121, 115, 116, 101, 109])))\n'
    found = [f for f in scan_source(hidden, "m.py") if f.rule_id == "PF102"]
    assert found and found[0].severity is Severity.HIGH and "'system'" in found[0].message
    chained = "x = chr(101) + chr(118) + chr(97) + chr(108) + chr(40) + chr(41)\n"
    assert worst(chained, "PF102") is Severity.HIGH
    assert worst('m = "".join(chr(c) for c in [111, 115, 46, 112])\n', "PF102") is Severity.HIGH


def test_miner_names_in_advice_and_rule_lists_are_not_miners() -> None:
    advisory = 'ADVICE = {"lolMiner": "Remove pip packages: lolMiner*. Reinstall ComfyUI."}\n'
    assert worst(advisory, "PF110") is Severity.MEDIUM
    rules = 'PATTERN = r"\\b(xmrig|ethminer|nbminer|gminer|nanopool|supportxmr)\\b"\n'
    assert worst(rules, "PF110") is None
    doc = '"""Finds miners: a stratum+tcp://pool.example:3333 URL in a config is one."""\n'
    assert worst(doc, "PF110") is None


def test_a_miner_that_runs_is_high() -> None:
    start = 'import subprocess\nsubprocess.Popen(["./xmrig", "-t", "4"])\n'
    assert worst(start, "PF110") is Severity.HIGH
    assert worst('POOL = "stratum+tcp://pool.example.invalid:3333"\n', "PF110") is Severity.CRITICAL


def test_packer_names_in_strings_are_not_packed_code() -> None:
    assert worst('MARKERS = ("__pyarmor__", "pyarmor_runtime", "Obfuscated by", "pyobfuscate")\n', "PF102") is None
    packed = "# Pyarmor 9.1.0 (trial), 000000, 2026-01-01T00:00:00\nfrom pyarmor_runtime_000000 import __pyarmor__\n" \
             "__pyarmor__(__name__, __file__, b'PY000000')\n"
    assert worst(packed, "PF102") is Severity.HIGH
    assert worst("# Obfuscated by pyobfuscate\nx = 1\n", "PF102") is Severity.HIGH
    assert worst("".join(f"_0x{i:04x} = {i}\n" for i in range(12)), "PF102") is Severity.HIGH


def test_dict_get_on_a_response_is_not_network_use() -> None:
    source = ("import requests\nsession = requests.Session()\n"
              "def models():\n    data = session.get('https://api.example.invalid/models').json()\n"
              "    names = [m.get('id') for m in data.get('data', [])]\n    return data.get('error'), names\n"
              "models()\n")
    network = sorted(f.line for f in scan_source(source, "m.py") if f.rule_id == "PF104")
    assert network == [4]   # the session.get() that really runs at import, not the three dict look-ups


def test_json_pointer_escape_is_not_a_file_write() -> None:
    source = 'def escape(token):\n    return token.replace("~", "~0").replace("/", "~1")\nescape("a/b")\n'
    assert worst(source, "PF107") is None
    assert worst('import pathlib\npathlib.Path("a.txt").replace("/etc/cron.d/x")\n', "PF108") is Severity.HIGH


def test_package_manager_and_shell_at_import_are_high(tmp_path: Path) -> None:
    """The ComfyUI LLM Party pattern: __init__ calls helpers in another file that run apt-get and pip install."""
    root = tmp_path / "pack"
    root.mkdir()
    (root / "__init__.py").write_text("from .setup_deps import audio, client\ntry:\n    audio()\n"
                                      "except Exception:\n    pass\nclient()\n")
    (root / "setup_deps.py").write_text(
        "import os, subprocess, sys\n"
        "def audio():\n    os.system('apt-get update')\n    os.system('apt-get install -y libportaudio2')\n"
        "def client():\n    subprocess.check_call([sys.executable, '-m', 'pip', 'install', 'websocket-client'])\n"
        "def later():\n    subprocess.check_call([sys.executable, '-m', 'pip', 'install', 'extra-thing'])\n")
    report = scan(root, options=_OPTIONS)
    by_line = {f.line: f for f in report.findings if f.rule_id == "PF103"}
    assert {line: f.severity for line, f in by_line.items()} == {
        3: Severity.HIGH, 4: Severity.HIGH, 6: Severity.HIGH, 8: Severity.LOW}
    assert "apt-get" in by_line[4].message and "imported" in by_line[4].message
    assert "pip install (websocket-client)" in by_line[6].message
    assert worst("import os\nos.system('echo hi > /tmp/x')\n", "PF103") is Severity.HIGH   # a shell at import
    assert worst("import subprocess\nsubprocess.run('ls', shell=True)\n", "PF103") is Severity.HIGH


def test_terminal_windows_opened_on_request_are_not_hidden_processes() -> None:
    visible = ("import subprocess, sys\ndef open_bot(path):\n"
               "    subprocess.Popen(['start', 'cmd', '/k', sys.executable, path], shell=True,\n"
               "                     creationflags=subprocess.DETACHED_PROCESS)\n")
    assert worst(visible, "PF103") is Severity.MEDIUM
    hidden = ("import subprocess\ndef go():\n    subprocess.Popen(['./agent'], start_new_session=True,\n"
              "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n")
    assert worst(hidden, "PF103") is Severity.HIGH
