"""The Python API reference is generated from the docstrings (pdoc) on every CI run, so it cannot rot unnoticed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MODULES = ("partyflow.builder", "partyflow.builder.stubs", "partyflow.engine.engine", "partyflow.media.services",
           "partyflow.media.ocr", "partyflow.access", "partyflow.channels")


def test_api_reference_builds_from_docstrings(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pdoc", *MODULES, "-o", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    builder = (tmp_path / "partyflow" / "builder.html").read_text()
    assert "Workflow" in builder and "checked against the installed" in builder  # the class and its docstring
    assert (tmp_path / "partyflow" / "engine" / "engine.html").exists()
    assert "Traceback" not in done.stderr
