"""What runs when a pack is imported: module level, class bodies, decorators and what they call, across the pack's
files; function bodies only when called; files nothing runs at lower severity. Each pack here is a few lines written
for the test."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from partyflow.security.scanner import ScanOptions, Severity, scan

_OPTIONS = ScanOptions(use_bandit=False, use_vulndb=False)
NET = "import urllib.request\n"
CALL = 'urllib.request.urlopen("https://example.invalid/x")'


def pack(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def import_time_network(root: Path) -> set[str]:
    """Files with a PF104 (network at import) finding at high."""
    report = scan(root, options=_OPTIONS)
    return {f.path for f in report.findings if f.rule_id == "PF104" and f.severity >= Severity.HIGH}


@pytest.mark.parametrize(("body", "runs"), [
    (f"{CALL}\n", True),                                                       # module level
    (f"class C:\n    DATA = {CALL}\n", True),                                   # class body
    (f"def f():\n    {CALL}\nf()\n", True),                                     # called at module level
    (f"def f():\n    {CALL}\n", False),                                        # only defined
    (f"class C:\n    def m(self):\n        {CALL}\n", False),                  # a method nobody calls
    (f"class C:\n    def __init__(self):\n        {CALL}\nC()\n", True),         # instantiated at import
    (f"class C:\n    def m(self):\n        {CALL}\nc = C()\nc.m()\n", True),     # method of an instance
    (f"class C:\n    def m(self):\n        {CALL}\nC().m()\n", True),
    (f"class C:\n    def a(self):\n        self.b()\n    def b(self):\n        {CALL}\nC().a()\n", True),
    (f"def deco(fn):\n    {CALL}\n    return fn\n@deco\ndef g():\n    pass\n", True),   # decorators run
    (f"def reg(path):\n    def wrap(fn):\n        {CALL}\n        return fn\n    return wrap\n"
     "@reg('/x')\ndef g():\n    pass\n", True),                               # a decorator factory's decorator
    (f"def deco(fn):\n    return fn\n@deco\ndef g():\n    {CALL}\n", False),   # the decorated body does not
    (f"import threading\ndef f():\n    {CALL}\nthreading.Thread(target=f).start()\n", True),
    (f"import atexit\ndef f():\n    {CALL}\natexit.register(f)\n", True),
    (f"ROUTES = []\ndef f():\n    {CALL}\nROUTES.append(f)\n", False),      # registered, runs on request
    (f"def outer():\n    def handler():\n        {CALL}\n    return handler\nouter()\n", False),
    (f"def outer():\n    async def handler(request):\n        {CALL}\n    server.add_route('/x', handler)\n"
     "outer()\n", False),                                                     # a route registered at import
    (f"def fetch():\n    {CALL}\ndef outer():\n    async def handler(request):\n        return fetch()\n"
     "    server.add_route('/x', handler)\nouter()\n", False),                 # the handler calls a module function
    (f"if __name__ == '__main__':\n    {CALL}\n", False),                       # a script's main block
    (f"import sys\nif sys.platform != 'win32' and __name__ == '__main__':\n    {CALL}\n", False),
    (f"lambda: {CALL}\n", False),
    (f"ROUTES = []\nROUTES.append(lambda: {CALL})\n", False),
    (f"(lambda: {CALL})()\n", True),                                         # what a lambda does when called
    (f"import threading\nthreading.Thread(target=lambda: {CALL}).start()\n", True),
    (f"def f():\n    {CALL}\nrun = f\nrun()\n", True),                         # through an alias
    (f"ping = lambda: {CALL}\nping()\n", True),
    (f"def f():\n    {CALL}\nfor step in (f,):\n    step()\n", True),          # a loop over functions
])
def test_import_time_is_precise(tmp_path: Path, body: str, runs: bool) -> None:
    root = pack(tmp_path / "p", {"__init__.py": NET + body})
    assert (import_time_network(root) == {"__init__.py"}) is runs


def test_calls_across_files_are_followed(tmp_path: Path) -> None:
    root = pack(tmp_path / "p", {
        "__init__.py": "from .helpers import setup\nfrom . import stats\nfrom .sub import api\nsetup()\n"
                       "stats.report()\napi.Client().ping()\n",
        "helpers.py": NET + f"def setup():\n    {CALL}\ndef unused():\n    {CALL}\n",
        "stats.py": NET + f"def report():\n    {CALL}\n",
        "sub/__init__.py": "from .api import Client\n",
        "sub/api.py": NET + f"class Client:\n    def ping(self):\n        {CALL}\n    def other(self):\n"
                            f"        {CALL}\n",
        "unimported.py": NET + f"{CALL}\n",
    })
    report = scan(root, options=_OPTIONS)
    high = sorted((f.path, f.line) for f in report.findings if f.rule_id == "PF104")
    assert high == [("helpers.py", 3), ("stats.py", 3), ("sub/api.py", 4)]


def test_reexports_and_absolute_imports_by_pack_name(tmp_path: Path) -> None:
    root = pack(tmp_path / "mypack", {
        "__init__.py": "import mypack.core as core\nfrom mypack.tools import beacon\ncore.start()\nbeacon()\n",
        "core.py": NET + f"def start():\n    {CALL}\n",
        "tools/__init__.py": "from .impl import beacon\n",
        "tools/impl.py": NET + f"def beacon():\n    {CALL}\n",
    })
    assert import_time_network(root) == {"core.py", "tools/impl.py"}


def test_lazy_imports_are_on_demand_not_import_time(tmp_path: Path) -> None:
    root = pack(tmp_path / "p", {
        "__init__.py": "class Node:\n    def run(self):\n        from .heavy import go\n        return go()\n",
        "heavy.py": NET + f"{CALL}\ndef go():\n    pass\n",
    })
    assert import_time_network(root) == set()


def test_computed_loading_counts_as_loading_the_folder(tmp_path: Path) -> None:
    """A loader the analysis cannot resolve must not hide code: what it can reach counts as run at import."""
    root = pack(tmp_path / "p", {
        "__init__.py": "import importlib, os\nHERE = os.path.dirname(__file__)\n"
                       "for name in os.listdir(os.path.join(HERE, 'nodes')):\n"
                       "    importlib.import_module('.nodes.' + name[:-3], __name__)\n",
        "nodes/a.py": NET + f"{CALL}\n",
        "other/b.py": NET + f"{CALL}\n",
    })
    assert import_time_network(root) == {"nodes/a.py"}


def test_install_script_imported_by_init_runs_at_import(tmp_path: Path) -> None:
    """install.py runs once when the manager installs the pack; imported by __init__ it runs at every start."""
    install = "import os\ndef portaudio():\n    os.system('apt-get install -y libportaudio2')\nportaudio()\n"
    alone = pack(tmp_path / "alone", {"__init__.py": "", "install.py": install})
    imported = pack(tmp_path / "imported", {"__init__.py": "from .install import portaudio\n", "install.py": install})
    worst = {root.name: max(f.severity for f in scan(root, options=_OPTIONS).findings if f.rule_id == "PF103")
             for root in (alone, imported)}
    assert worst == {"alone": Severity.MEDIUM, "imported": Severity.HIGH}


def test_scripts_nothing_runs_are_scanned_one_level_lower(tmp_path: Path) -> None:
    spawn = "import subprocess, sys\nsubprocess.run([sys.executable, '-c', sys.argv[1]])\n"
    root = pack(tmp_path / "p", {
        "__init__.py": "",
        "tests/check.py": spawn,
        "tool.py": spawn + "if __name__ == '__main__':\n    pass\n",
        "webui.py": NET + f"{CALL}\n",
        "run.bat": "python webui.py\n",
        "orphan.py": "import base64, marshal\nexec(marshal.loads(base64.b64decode(B)))\n",
    })
    report = scan(root, options=_OPTIONS)
    by_file = {f.path: f for f in report.findings if f.rule_id in ("PF103", "PF104")}
    assert by_file["tests/check.py"].severity is Severity.LOW
    assert "standalone script" in by_file["tests/check.py"].message
    assert by_file["tool.py"].severity is Severity.LOW
    assert "webui.py" not in by_file   # a user-run script's module level is not the pack's import
    # a module nothing imports that is not recognisably a script keeps its severity: an unresolved import
    # must not hide a payload
    assert any(f.path == "orphan.py" and f.severity is Severity.CRITICAL for f in report.findings)


def test_script_launched_by_the_pack_is_on_demand(tmp_path: Path) -> None:
    root = pack(tmp_path / "p", {
        "__init__.py": "import subprocess, sys, os\ndef update():\n"
                       "    subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), 'helper.py')])\n",
        "helper.py": NET + f"if __name__ == '__main__':\n    {CALL}\n",
    })
    report = scan(root, options=_OPTIONS)
    assert not report.at_or_above(Severity.HIGH)
    assert not any("standalone script" in f.message for f in report.findings)


def test_a_linked_pack_folder_is_scanned_through_the_link(tmp_path: Path) -> None:
    real = pack(tmp_path / "real", {"__init__.py": NET + f"{CALL}\n"})
    link = tmp_path / "custom_nodes" / "linked"
    link.parent.mkdir()
    link.symlink_to(real, target_is_directory=True)
    report = scan(link, options=_OPTIONS)
    assert report.files_scanned == 1 and report.at_or_above(Severity.HIGH)


def test_hostile_import_graphs_do_not_break_the_scan(tmp_path: Path) -> None:
    """Cycles, self-imports, star imports, relative imports past the top, unparseable files, deep re-export
    chains: the scan finishes and still finds the import-time call."""
    files = {
        "__init__.py": "from . import a\nfrom .a import *\nfrom .... import nothing\nfrom .chain0 import f\nf()\n",
        "a.py": "from . import b\nfrom .a import a\nimport a\n",
        "b.py": "from . import a\nfrom .b import b\n",
        "broken.py": "def (:\n",
        "chain9.py": NET + f"def f():\n    {CALL}\n",
    }
    for index in range(9):
        files[f"chain{index}.py"] = f"from .chain{index + 1} import f\n"
    root = pack(tmp_path / "p", files)
    report = scan(root, options=_OPTIONS)
    assert any(f.rule_id == "PF100" and f.path == "broken.py" for f in report.findings)
    assert report.files_scanned == len(files)
    assert [(f.path, f.rule_id) for f in report.at_or_above(Severity.HIGH)] == [("chain9.py", "PF104")]
