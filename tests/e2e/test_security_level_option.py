"""`--security-level` (and PARTYFLOW_SECURITY_LEVEL) with a name that is not a level is refused by every command,
naming the valid levels (issue 10, part 3): `run` and `nodes list` once accepted `bogus` silently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from partyflow.cli.main import app

COMMANDS = [["run", "missing.json"], ["nodes", "list"], ["serve", "--port", "0"], ["audit", "verify"],
            ["nodes", "install", "somewhere"], ["bundle", "verify", "missing.pfb"], ["snapshot", "list"],
            ["models", "list"]]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("PARTYFLOW_SECURITY_LEVEL", "PARTYFLOW_MANAGER_SECURITY_LEVEL", "PARTYFLOW_HOME")}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_bogus_level_is_refused_by_every_command(command: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "--security-level", "bogus", *command],
                                env=_clean_env())
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.replace("│", " ").split())  # rich may wrap the message inside its box
    assert "not a security level" in text and "strong, normal, normal-, weak" in text
    assert not (tmp_path / "home" / "state.sqlite").exists()  # refused before anything ran


def test_the_environment_variable_is_checked_too_and_real_levels_pass(tmp_path: Path) -> None:
    env = {**_clean_env(), "PARTYFLOW_SECURITY_LEVEL": "nope"}
    done = subprocess.run([sys.executable, "-m", "partyflow", "--home", str(tmp_path / "home"), "nodes", "list"],
                          capture_output=True, text=True, env=env, timeout=120)
    text = " ".join(done.stderr.replace("│", " ").split())
    assert done.returncode == 2 and "PARTYFLOW_SECURITY_LEVEL='nope' is not a security level" in text
    for level in ("strong", "NORMAL", "normal-", "weak"):
        result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "--security-level", level,
                                          "nodes", "list"], env=_clean_env())
        assert result.exit_code == 0, (level, result.output)
