"""The CLI as users run it: real subprocesses, real files, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import install_pack

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def partyflow(*args: str, home: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PARTYFLOW_HOME", None) if env is None or "PARTYFLOW_HOME" not in env else None
    command = [sys.executable, "-m", "partyflow", *args]
    if home is not None:
        command += ["--home", str(home)]
    return subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=120)


def test_version() -> None:
    done = partyflow("--version")
    assert done.returncode == 0 and done.stdout.startswith("partyflow 0.")


@pytest.mark.parametrize("example, expected", [
    ("hello.json", "Hello, world! Welcome to partyflow."),
    ("hello_ui.json", "Hello, editor!"),
    ("word_stats.json", "The Quick Brown Fox | Jumps Over | The Lazy Dog"),
    ("countdown_loop.json", "liftoff in: 5 4 3 2 1"),
])
def test_examples_run_as_they_are(tmp_path: Path, example: str, expected: str) -> None:
    done = partyflow("run", str(EXAMPLES / example), home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout


def test_set_overrides_by_title_and_json_output(tmp_path: Path) -> None:
    done = partyflow("run", str(EXAMPLES / "hello.json"), "--set", 'name.value="Ada"', "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "success"
    assert result["outputs"]["show"] == {"text": ["Hello, Ada! Welcome to partyflow."]}


def test_bad_override_is_refused_with_exit_2(tmp_path: Path) -> None:
    done = partyflow("run", str(EXAMPLES / "hello.json"), "--set", "nosuchnode.value=1", home=tmp_path)
    assert done.returncode == 2
    assert "no node with id or title 'nosuchnode'" in done.stderr
    assert "Traceback" not in done.stderr


def test_malformed_json_gives_line_and_column(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"1": {"class_type": "TextValue",\n "inputs": {]}}')
    done = partyflow("run", str(broken), home=tmp_path / "home")
    assert done.returncode == 2
    assert "invalid JSON at line 2" in done.stderr and "Traceback" not in done.stderr


def test_validate_lists_every_problem(tmp_path: Path) -> None:
    workflow = tmp_path / "bad.json"
    workflow.write_text(json.dumps({
        "1": {"class_type": "IntMath", "inputs": {"a": 1, "operation": "cube", "b": 2}},
        "2": {"class_type": "DisplayValue", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "NoSuchNode", "inputs": {}},
        "4": {"class_type": "DisplayText", "inputs": {"text": ["1", 0]}},
    }))
    done = partyflow("validate", str(workflow), home=tmp_path / "home")
    assert done.returncode == 2
    assert "'cube' not in" in done.stdout
    assert "Node type 'NoSuchNode' not found" in done.stdout
    assert "received_type(INT) mismatch input_type(STRING)" in done.stdout
    as_json = json.loads(partyflow("validate", str(workflow), "--json", home=tmp_path / "home").stdout)
    assert set(as_json["node_errors"]) == {"1", "3", "4"}


def test_failing_node_exits_1_naming_the_node(tmp_path: Path) -> None:
    workflow = tmp_path / "fail.json"
    workflow.write_text(json.dumps({
        "1": {"class_type": "TextValue", "inputs": {"value": "not json"}},
        "2": {"class_type": "JSONParse", "inputs": {"text": ["1", 0]}},
        "3": {"class_type": "DisplayValue", "inputs": {"value": ["2", 0]}},
    }))
    done = partyflow("run", str(workflow), home=tmp_path / "home")
    assert done.returncode == 1
    assert "node 2 [JSONParse] failed" in done.stderr


def test_convert_writes_the_api_form(tmp_path: Path) -> None:
    target = tmp_path / "api.json"
    done = partyflow("convert", str(EXAMPLES / "hello_ui.json"), "-o", str(target), home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    prompt = json.loads(target.read_text())
    assert prompt["1"] == {"class_type": "TextValue", "inputs": {"value": "editor"}, "_meta": {"title": "name"}}
    assert prompt["2"]["inputs"]["a"] == ["1", 0]
    assert "4" not in prompt  # the Note is editor-only


def test_nodes_list_and_info_honour_partyflow_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    install_pack(home, "semantics")
    listed = partyflow("nodes", "list", "--json", env={"PARTYFLOW_HOME": str(home)})
    assert listed.returncode == 0, listed.stderr
    names = {row["class_type"]: row for row in json.loads(listed.stdout)}
    assert names["CountDown"]["module"] == "custom_nodes.semantics" and "TextTemplate" in names
    filtered = json.loads(partyflow("nodes", "list", "--category", "partyflow/json", "--json", home=home).stdout)
    assert filtered and {row["category"] for row in filtered} == {"partyflow/json"}
    info = json.loads(partyflow("nodes", "info", "Const", "--json", home=home).stdout)
    assert info["display_name"] == "Constant" and info["input"]["required"]["value"][0] == "INT"
    missing = partyflow("nodes", "info", "Cnst", home=home)
    assert missing.returncode == 2 and "no node class 'Cnst'" in missing.stderr


def test_a_broken_pack_is_reported_and_the_rest_still_work(tmp_path: Path) -> None:
    home = tmp_path / "home"
    broken = home / "custom_nodes" / "broken_pack"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise RuntimeError('this pack is broken')\n")
    done = partyflow("nodes", "list", home=home)
    assert done.returncode == 0
    assert "broken_pack" in done.stderr and "this pack is broken" in done.stderr
    assert partyflow("run", str(EXAMPLES / "hello.json"), home=home).returncode == 0
