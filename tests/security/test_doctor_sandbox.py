"""`nodes doctor` imports packs in the OS sandbox (issue 10, item 6): a pack that runs `pip install`, writes files
and opens sockets at import is diagnosed, reported, and nothing of it happens on this machine."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from partyflow.cli.main import app
from partyflow.config import Home
from partyflow.manager import doctor
from partyflow.manager.errors import ManagerError
from partyflow.security import sandbox

NODE = ("class Hello:\n    @classmethod\n    def INPUT_TYPES(cls):\n        return {'required': {}}\n"
        "    RETURN_TYPES = ('STRING',)\n    FUNCTION = 'run'\n    CATEGORY = 'test'\n"
        "    def run(self):\n        return ('hi',)\n")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0)
    yield server
    server.close()


@pytest.fixture
def setup(tmp_path: Path, listener: socket.socket) -> dict[str, Path]:
    """A home with one pack that, at import, does what LLM Party's did: pip install (of a real local project, which
    would succeed unconfined), apt-get, writes to the home, its own folder and elsewhere, and calls home."""
    home = Home(tmp_path / "home")
    home.custom_nodes.mkdir(parents=True)
    home.config_file.write_text("[server]\nallow_code_tools = false\n")
    project = tmp_path / "tinyproj"
    (project / "tinyproj").mkdir(parents=True)
    (project / "tinyproj" / "__init__.py").write_text("VALUE = 1\n")
    (project / "pyproject.toml").write_text('[project]\nname = "tinyproj"\nversion = "1.0"\n'
                                            '[build-system]\nrequires = []\nbuild-backend = "setuptools.build_meta"\n')
    outside, target = tmp_path / "written-by-pack.txt", tmp_path / "pip-target"
    pack = home.custom_nodes / "installer"
    pack.mkdir()
    (pack / "__init__.py").write_text(f"""
import os, pathlib, socket, subprocess, sys
here = pathlib.Path(__file__).parent
subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-build-isolation", "--target",
                {str(target)!r}, {str(project)!r}], capture_output=True)
os.system("apt-get -s install cowsay >/dev/null 2>&1")  # -s: a simulation, harmless even unconfined
subprocess.run("cd / && uv pip install tinyproj", shell=True, capture_output=True)
for path in ({str(outside)!r}, {str(home.config_file)!r}, str(here / "cache.json"),
             {str(home.custom_nodes / "dropped" / "__init__.py")!r}):
    try:
        pathlib.Path(path).write_text("changed")
    except OSError:
        pass
try:
    socket.create_connection(("127.0.0.1", {listener.getsockname()[1]}), timeout=2)
except OSError:
    pass
{NODE}
NODE_CLASS_MAPPINGS = {{"InstallerHello": Hello}}
""")
    return {"home": home.root, "outside": outside, "target": target, "pack": pack}


def _untouched(setup: dict[str, Path], listener: socket.socket) -> None:
    home = Home(setup["home"])
    assert not setup["outside"].exists() and not setup["target"].exists()
    assert home.config_file.read_text() == "[server]\nallow_code_tools = false\n"
    assert sorted(p.name for p in setup["pack"].iterdir()) == ["__init__.py"]
    assert sorted(p.name for p in home.custom_nodes.iterdir()) == ["installer"]
    with pytest.raises(BlockingIOError):
        listener.accept()
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('tinyproj') is not None)"
    assert os.spawnv(os.P_WAIT, sys.executable, [sys.executable, "-c", probe]) == 0  # not installed here either


def test_doctor_reports_import_time_installs_and_writes_without_doing_them(setup: dict[str, Path],
                                                                        listener: socket.socket) -> None:
    [health] = doctor.diagnose(Home(setup["home"]))
    assert health.ok and health.node_types == ("InstallerHello",), health
    kinds = {(a.kind, a.package_manager) for a in health.attempts}
    assert ("process", True) in kinds and ("write", False) in kinds and ("network", False) in kinds
    details = " | ".join(a.detail for a in health.attempts)
    assert "pip install" in details and "apt-get -s install cowsay" in details
    shell = [a for a in health.attempts if "uv pip install tinyproj" in a.detail]
    assert shell and all(a.package_manager for a in shell)  # found inside a shell command line too
    assert str(setup["outside"]) in details and "config.toml" in details and "cache.json" in details
    assert any("package manager at import" in hint for hint in health.hints)
    _untouched(setup, listener)


def test_the_cli_reports_the_attempts(setup: dict[str, Path], listener: socket.socket) -> None:
    result = CliRunner().invoke(app, ["--home", str(setup["home"]), "nodes", "doctor", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["ok"] and any(a["package_manager"] and "pip" in a["detail"] for a in row["attempts"])
    _untouched(setup, listener)


def test_without_the_sandbox_doctor_refuses_to_import(setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = sandbox.shutil.which
    monkeypatch.setattr(sandbox.shutil, "which", lambda name, path=None: None if name == "bwrap"
                        else real_which(name, path=path))
    sandbox._probe.cache_clear()
    try:
        with pytest.raises(ManagerError, match="only inside the OS sandbox.*'bwrap' was not found"):
            doctor.diagnose(Home(setup["home"]))
    finally:
        sandbox._probe.cache_clear()
    assert not setup["outside"].exists()
