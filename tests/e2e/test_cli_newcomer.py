"""What a newcomer trips over in the first hour (issue 22): each finding, as users meet it, in a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.e2e.test_cli import EXAMPLES, partyflow

from partyflow.cli.main import command


def test_piped_output_keeps_whole_values(tmp_path: Path) -> None:
    # COLUMNS=40 is what a narrow terminal reports; output into a pipe must not be cut to it
    done = partyflow("nodes", "list", home=tmp_path, env={"COLUMNS": "40"})
    assert done.returncode == 0, done.stderr
    assert "WorkflowRunnerTool" in done.stdout and "partyflow.builtin_nodes.agents" in done.stdout
    assert "…" not in done.stdout
    rows = [line for line in done.stdout.splitlines() if "WorkflowRunnerTool" in line]
    assert len(rows) == 1  # one row, not wrapped over several lines


def test_piped_error_messages_are_not_wrapped(tmp_path: Path) -> None:
    workflow = tmp_path / "w.json"
    workflow.write_text(json.dumps({"1": {"class_type": "APIModelLoader", "inputs": {"provider": "nope"}},
                                    "2": {"class_type": "DisplayValue", "inputs": {"value": ["1", 0]}}}))
    done = partyflow("run", str(workflow), home=tmp_path / "home", env={"COLUMNS": "40"})
    assert done.returncode == 2
    line = next(line for line in done.stderr.splitlines() if "node 1 (APIModelLoader)" in line)
    assert line.rstrip().endswith("use a configured name")  # the whole message on one line


def test_help_shows_words_not_python_types() -> None:
    done = subprocess.run([sys.executable, "-m", "partyflow", "run", "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=60)
    assert done.returncode == 0
    assert "Usage: partyflow run [OPTIONS] WORKFLOW" in done.stdout
    assert "--set" in done.stdout and "NODE.INPUT=JSON" in done.stdout and "STRATEGY" in done.stdout
    for noise in ("<bool>", "<list[str]>", "<str>", "{workflow}", "{WORKFLOW}"):
        assert noise not in done.stdout, noise
    root = subprocess.run([sys.executable, "-m", "partyflow", "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=60)
    assert "<bool>" not in root.stdout and "--security-level" in root.stdout and "LEVEL" in root.stdout


def _params(cmd, path=()):  # every parameter of every command, with the command's path
    for param in cmd.params:
        yield path, param
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _params(sub, (*path, name))


def test_every_parameter_of_every_command_gets_a_word() -> None:
    """A command added later without metavars is covered too: flags show nothing, the rest a word in capitals."""
    for path, param in _params(command()):
        where = f"partyflow {' '.join(path)} {param.name}"
        if getattr(param, "is_flag", False):
            assert param.metavar == "", where
        else:
            assert param.metavar and param.metavar.lstrip("[")[:1].isupper(), where


def test_every_command_renders_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Help texts holding brackets (`provider:NAME[/MODEL]`) render as written, for every command."""
    from typer import _click

    def walk(cmd, ctx):
        cmd.get_help(ctx)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, _click.Context(sub, info_name=name, parent=ctx))

    root = command()
    walk(root, _click.Context(root, info_name="partyflow"))
    shown = capsys.readouterr().out
    assert "provider:NAME[/MODEL]" in shown and "<bool>" not in shown


def test_hints_that_name_an_extra_keep_their_brackets(tmp_path: Path) -> None:
    # an 'mcp' package that cannot be imported, as when the extra is not installed
    blocked = tmp_path / "blocked"
    (blocked / "mcp").mkdir(parents=True)
    (blocked / "mcp" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'mcp'\", name='mcp')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocked), *sys.path])}
    done = partyflow("mcp", "list", home=tmp_path / "home", env=env)
    assert done.returncode == 2
    assert "pip install 'partyflow[mcp]'" in done.stderr

    workflow = tmp_path / "mcp.json"
    workflow.write_text(json.dumps({"1": {"class_type": "MCPTools", "inputs": {"server": "docs"}},
                                    "2": {"class_type": "DisplayValue", "inputs": {"value": ["1", 0]}}}))
    done = partyflow("validate", str(workflow), home=tmp_path / "home", env=env)
    assert done.returncode == 2 and "pip install 'partyflow[mcp]'" in done.stdout


def test_models_list_names_the_gguf_extra_with_brackets(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[providers.local]\ntype = "llamacpp"\npath = "model.gguf"\n')
    (home / "models" / "gguf").mkdir(parents=True)
    (home / "models" / "gguf" / "model.gguf").write_bytes(b"GGUF")
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    # as if llama-cpp-python were not installed: the check asks importlib whether it could import it
    (blocked / "sitecustomize.py").write_text(
        "import importlib.util as u\n_real = u.find_spec\n"
        "u.find_spec = lambda name, *a, **k: None if name == 'llama_cpp' else _real(name, *a, **k)\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocked), *sys.path])}
    done = partyflow("models", "list", home=home, env={**env, "COLUMNS": "300"})
    assert "partyflow[gguf]" in done.stdout, done.stdout + done.stderr


def test_run_labels_each_output_with_its_title_or_class(tmp_path: Path) -> None:
    done = partyflow("run", str(EXAMPLES / "word_stats.json"), home=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "length of each line (#7): 19" in lines
    assert "titled lines (#6): The Quick Brown Fox | Jumps Over | The Lazy Dog" in lines
    untitled = partyflow("run", str(EXAMPLES / "hello.json"), home=tmp_path)
    assert "(#show): Hello, world! Welcome to partyflow." in untitled.stdout


def _ui_workflow_with_unknown_node(path: Path) -> Path:
    path.write_text(json.dumps({
        "last_node_id": 2, "last_link_id": 0, "version": 0.4, "links": [],
        "nodes": [
            {"id": 1, "type": "TextValue", "mode": 0, "inputs": [],
             "outputs": [{"name": "text", "type": "STRING", "links": []}], "widgets_values": ["hi"]},
            {"id": 2, "type": "FancyThing", "mode": 0, "inputs": [], "outputs": [], "widgets_values": [1, "x"]},
            {"id": 3, "type": "Note", "mode": 0, "inputs": [], "outputs": [], "widgets_values": ["a note"]},
        ]}))
    return path


def test_convert_warns_about_nodes_it_cannot_convert_and_strict_fails(tmp_path: Path) -> None:
    workflow = _ui_workflow_with_unknown_node(tmp_path / "ui.json")
    done = partyflow("convert", str(workflow), home=tmp_path / "home")
    assert done.returncode == 0
    assert json.loads(done.stdout)["1"]["inputs"] == {"value": "hi"}
    assert "warning: node #2 (FancyThing) is not installed; its 2 widget value(s) are left out" in done.stderr
    assert "Note" not in done.stderr  # editor-only nodes are not packs to install
    strict = partyflow("convert", str(workflow), "--strict", "-o", str(tmp_path / "out.json"), home=tmp_path / "home")
    assert strict.returncode == 2 and "error: node #2 (FancyThing)" in strict.stderr
    assert not (tmp_path / "out.json").exists()


def test_misspelt_input_name_is_named_with_a_suggestion(tmp_path: Path) -> None:
    workflow = tmp_path / "w.json"
    workflow.write_text(json.dumps({"1": {"class_type": "TextValue", "inputs": {"valeu": "x"}},
                                    "2": {"class_type": "DisplayText", "inputs": {"text": ["1", 0]}}}))
    done = partyflow("validate", str(workflow), home=tmp_path / "home")
    assert done.returncode == 2
    assert "node 1 (TextValue), input 'value': unknown input 'valeu' (did you mean 'value'?)" in done.stdout
    as_json = json.loads(partyflow("validate", str(workflow), "--json", home=tmp_path / "home").stdout)
    issue = as_json["node_errors"]["1"]["errors"][0]
    assert issue["type"] == "required_input_missing" and issue["extra_info"]["unknown_input"] == "valeu"


def test_messages_say_each_problem_once_node_first(tmp_path: Path) -> None:
    workflow = tmp_path / "w.json"
    workflow.write_text(json.dumps({"1": {"class_type": "IntValue", "inputs": {"value": "abc"}},
                                    "2": {"class_type": "DisplayValue", "inputs": {"value": ["1", 0]}}}))
    done = partyflow("run", str(workflow), home=tmp_path / "home")
    assert done.returncode == 2
    assert "Prompt outputs failed validation" not in done.stderr
    assert "node 1 (IntValue), input 'value': 'abc' is not an INT value" in done.stderr

    failing = tmp_path / "fail.json"
    failing.write_text(json.dumps({"1": {"class_type": "APIModelLoader", "inputs": {"provider": "p"}},
                                   "2": {"class_type": "DisplayValue", "inputs": {"value": ["1", 0]}}}))
    home = tmp_path / "home2"
    home.mkdir()
    (home / "config.toml").write_text('[providers.p]\ntype = "openai_compat"\nmodel = "m"\nbase_url = "http://127.0.0.1:9/v1"\n'
                                      'api_key_env = "PARTYFLOW_TEST_NO_SUCH_KEY"\n')
    done = partyflow("run", str(failing), home=home)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("failed") == 1 and "failed: node 1 (APIModelLoader): " in done.stderr
    assert "partyflow.llm.errors." not in done.stderr


def test_a_directory_is_called_a_directory(tmp_path: Path) -> None:
    done = partyflow("run", str(tmp_path), home=tmp_path / "home")
    assert done.returncode == 2 and "is a directory" in done.stderr
    assert "no such workflow file" not in done.stderr


def test_unconfigured_mcp_server_is_refused_at_validation(tmp_path: Path) -> None:
    workflow = tmp_path / "mcp.json"
    workflow.write_text(json.dumps({"1": {"class_type": "MCPTools", "inputs": {"server": "docs"}},
                                    "2": {"class_type": "DisplayValue", "inputs": {"value": ["1", 0]}}}))
    done = partyflow("run", str(workflow), home=tmp_path / "home")
    assert done.returncode == 2
    assert "node 1 (MCPTools), input 'server': no MCP server 'docs'" in done.stderr and "[mcp.servers.docs]" in done.stderr


@pytest.mark.timeout(90)
def test_serve_announces_its_address_once(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "partyflow", "serve", "--home", str(tmp_path), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout is not None
    first = proc.stdout.readline()  # blocks until the server is bound
    assert first.startswith("partyflow listening on http://127.0.0.1:")
    proc.terminate()
    rest, errors = proc.communicate(timeout=60)
    assert (first + rest + errors).count("listening on") == 1
