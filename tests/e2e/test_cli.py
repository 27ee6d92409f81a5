"""The CLI as users run it: real subprocesses, real files, exit codes."""

from __future__ import annotations

import json
import os
import signal
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


def test_override_of_an_input_the_node_does_not_declare_is_refused(tmp_path: Path) -> None:
    done = partyflow("run", str(EXAMPLES / "hello.json"), "--set", "name.valeu=1", home=tmp_path)
    assert done.returncode == 2
    assert "node name (TextValue) has no input 'valeu' (its inputs: value)" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr and not done.stdout


def test_serve_on_a_busy_or_impossible_port_is_a_one_line_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        done = partyflow("serve", "--port", str(busy.getsockname()[1]), home=tmp_path)
    assert done.returncode == 2 and "address already in use" in done.stderr and "Traceback" not in done.stderr
    done = partyflow("serve", "--port", "70000", home=tmp_path)
    assert done.returncode == 2 and "not a TCP port" in done.stderr and "Traceback" not in done.stderr


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
    assert "node 1 (IntMath), input 'operation': value not in list — 'cube' not in" in done.stdout
    assert "node 3 (NoSuchNode): node type 'NoSuchNode' not found" in done.stdout
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
    assert "failed: node 2 (JSONParse): " in done.stderr
    assert "Traceback" not in done.stderr and "--verbose" in done.stderr  # the message for users only

    verbose = partyflow("--verbose", "run", str(workflow), home=tmp_path / "home")
    assert verbose.returncode == 1
    assert "Traceback" in verbose.stderr and "node 2 (JSONParse)" in verbose.stderr


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


def test_pack_text_is_shown_as_written_never_read_as_markup(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pack = home / "custom_nodes" / "brackets"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text('''
class Brackets:
    DESCRIPTION = "Reads [providers.NAME] tables; [/oops] is not markup."
    CATEGORY = "tests/[x]"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("[out]",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"tooltip": "a [bold]tip[/bold]"})}}

    def run(self, text):
        return (text,)


NODE_CLASS_MAPPINGS = {"Brackets": Brackets}
NODE_DISPLAY_NAME_MAPPINGS = {"Brackets": "[/b] Brackets"}
''')
    info = partyflow("nodes", "info", "Brackets", home=home, env={"COLUMNS": "200"})
    assert info.returncode == 0, info.stderr
    for text in ("[providers.NAME] tables; [/oops] is not markup", "[/b] Brackets", "tests/[x]",
                 "[bold]tip[/bold]", "[out]"):
        assert text in info.stdout, text
    listed = partyflow("nodes", "list", "--category", "tests/[x]", home=home, env={"COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    assert "[/b] Brackets" in listed.stdout and "Traceback" not in listed.stderr
    empty = partyflow("nodes", "list", "--category", "no/such", home=home)
    assert empty.returncode == 0 and "no node classes in category 'no/such'" in empty.stderr


def test_ctrl_c_interrupts_the_run_with_exit_130(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pack = home / "custom_nodes" / "waiter"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text('''
import threading

from comfy.model_management import processing_interrupted


class WaitForInterrupt:
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def run(self):
        print("node started", flush=True)
        stop = threading.Event()
        while not processing_interrupted():
            stop.wait(0.01)
        return ()


NODE_CLASS_MAPPINGS = {"WaitForInterrupt": WaitForInterrupt}
''')
    workflow = tmp_path / "wait.json"
    workflow.write_text(json.dumps({"1": {"class_type": "WaitForInterrupt", "inputs": {}}}))
    env = {k: v for k, v in os.environ.items() if k != "PARTYFLOW_HOME"}
    with subprocess.Popen([sys.executable, "-m", "partyflow", "run", str(workflow), "--home", str(home)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "node started"  # blocks until the node runs
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr


# --- real packs' habits (issue 20) -------------------------------------------------------------------------------

def test_run_json_stdout_stays_json_when_a_pack_prints(tmp_path: Path) -> None:
    install_pack(tmp_path, "noisy_pack")
    workflow = tmp_path / "noisy.json"
    workflow.write_text(json.dumps({"1": {"class_type": "NoisyUpper", "inputs": {"text": "quiet"}}}))
    done = partyflow("run", str(workflow), "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # nothing but the result on stdout
    assert result["outputs"]["1"] == {"text": ["QUIET"]}
    assert "noisy_pack: loading models..." in done.stderr and "raw write to fd 1" in done.stderr


def test_a_broken_pack_costs_one_warning_line_and_doctor_names_the_host_module(tmp_path: Path) -> None:
    install_pack(tmp_path, "broken_host_pack")
    done = partyflow("validate", str(EXAMPLES / "hello.json"), home=tmp_path)
    assert done.returncode == 0, done.stderr
    mentions = [line for line in done.stderr.splitlines() if "broken_host_pack" in line]
    assert len(mentions) == 1 and "partyflow nodes doctor" in mentions[0]
    assert "Traceback" not in done.stderr
    doctor = partyflow("nodes", "doctor", "--json", home=tmp_path)
    report = {entry["name"]: entry for entry in json.loads(doctor.stdout)}["broken_host_pack"]
    assert not report["ok"] and "comfy.unheard_of_module" in report["error"]
    assert any("ComfyUI's 'comfy.unheard_of_module'" in hint and "no requirement" in hint
               for hint in report["hints"])
