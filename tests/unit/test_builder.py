"""Workflows in Python (issue 21): the builder against the installed nodes, its exports, stubs and publishing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from partyflow import Engine, Workflow
from partyflow.builder import BuilderError
from partyflow.engine.events import Executed, ExecutionSuccess
from partyflow.server.published import read_publication

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with Engine(home=tmp_path_factory.mktemp("home")) as engine:
        yield engine


def word_stats(engine: Engine) -> tuple[Workflow, object, object]:
    """examples/word_stats.json, written in Python."""
    wf = Workflow(engine)
    lines = wf.MultilineText(value="the quick brown fox\njumps over\nthe lazy dog").titled("lines")
    items = wf.ListFromText(text=lines.text, separator="\n", strip=True, skip_empty=True)
    lengths = wf.TextLength(text=items.items)
    joined = wf.ListJoin(items=wf.TextCase(text=items.items, case="title").text, separator=" | ")
    shown = wf.DisplayText(text=joined.text).titled("titled lines")
    counted = wf.DisplayValue(value=lengths.length).titled("length of each line")
    return wf, shown, counted


def test_built_workflow_runs_like_the_json_example(engine: Engine) -> None:
    wf, shown, counted = word_stats(engine)
    built = engine.run(wf)
    from_file = engine.run(EXAMPLES / "word_stats.json")
    assert built.ok and from_file.ok
    assert built[shown].text == from_file.output("6") == "The Quick Brown Fox | Jumps Over | The Lazy Dog"
    assert built.outputs[counted.id] == from_file.outputs["7"]
    assert built[counted][0] == from_file.output("7")


def test_async_run_and_event_stream(engine: Engine) -> None:
    wf, shown, _ = word_stats(engine)

    async def go() -> tuple[list[object], object]:
        assert (await engine.run_async(wf))[shown].text.startswith("The Quick")
        engine.clear_cache()
        stream = engine.stream(wf)
        return [event async for event in stream], stream.result

    events, result = asyncio.run(go())
    assert any(isinstance(e, Executed) and e.node == shown.id for e in events)
    assert isinstance(events[-1], ExecutionSuccess) and result.ok


def test_ui_export_converts_back_to_the_same_prompt(engine: Engine, tmp_path: Path) -> None:
    wf, _, _ = word_stats(engine)
    with wf.group("report"):
        wf.DisplayText(text=wf.TextValue(value="extra").text)
    ui = wf.to_ui()
    assert engine.load_workflow(ui) == wf.to_api()
    saved = wf.save(tmp_path / "ui.json")
    done = subprocess.run([sys.executable, "-m", "partyflow", "convert", str(saved), "--home", str(tmp_path / "h")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == wf.to_api() and "warning" not in done.stderr
    [group] = ui["groups"]
    left, top, width, height = group["bounding"]
    members = [n for n in ui["nodes"] if n["id"] in (8, 9)]
    assert group["title"] == "report" and len(members) == 2
    for node in members:  # drawn around its nodes
        x, y = node["pos"]
        assert left < x and top < y and x + node["size"][0] < left + width and y + node["size"][1] < top + height
    xs = {n["id"]: n["pos"][0] for n in ui["nodes"]}
    assert xs[1] < xs[2] < xs[3] < xs[7]  # left to right along the links


def test_ui_file_round_trip_keeps_ids_titles_and_layout(engine: Engine) -> None:
    original = json.loads((EXAMPLES / "hello_ui.json").read_text())
    wf = Workflow.from_file(EXAMPLES / "hello_ui.json", engine)
    again = wf.to_ui()
    before = {n["id"]: n for n in original["nodes"] if n["type"] != "Note"}
    after = {n["id"]: n for n in again["nodes"]}
    assert set(after) == set(before)
    for node_id, node in before.items():
        assert after[node_id]["pos"] == node["pos"] and after[node_id]["type"] == node["type"]
        assert after[node_id].get("title") == node.get("title")
    assert engine.load_workflow(again) == engine.load_workflow(original)


def test_api_file_with_named_ids_round_trips(engine: Engine) -> None:
    wf = Workflow.from_file(EXAMPLES / "hello.json", engine)
    assert set(wf) == set(json.loads((EXAMPLES / "hello.json").read_text()))
    assert engine.run(wf).output("show") == "Hello, world! Welcome to partyflow."
    ui = wf.to_ui()
    assert all(isinstance(n["id"], int) for n in ui["nodes"])
    converted = engine.load_workflow(ui)
    assert sorted(n["class_type"] for n in converted.values()) == sorted(n["class_type"] for n in wf.values())


def _raised_at(call: object) -> tuple[BaseException, int]:
    try:
        call()  # type: ignore[operator]
    except (BuilderError, AttributeError) as exc:
        here = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == __file__]
        return exc, here[-1].lineno
    raise AssertionError("no error")


def test_mistakes_are_raised_where_they_are_written(engine: Engine) -> None:
    wf, other = Workflow(engine), Workflow(engine)
    text = wf.TextValue(value="a")
    number = wf.IntValue(value=3)
    foreign = other.TextValue(value="b")
    cases = {
        "no node class 'TextLenght' is installed — did you mean 'TextLength'?": lambda: wf.TextLenght(text=text.text),
        "node 3 (TextValue) has no input 'valeu' — did you mean 'value'?": lambda: wf.TextValue(valeu="x"),
        "node 3 (IntValue), input 'value': 'abc' is not an INT value": lambda: wf.IntValue(value="abc"),
        "node 3 (TextLength), input 'text': takes STRING, but": lambda: wf.TextLength(text=number.value),
        "belongs to another workflow": lambda: wf.TextLength(text=foreign.text),
        "has no output 'txt' — did you mean 'text'?": lambda: text.txt,
        "would make a cycle": lambda: text.set(value=wf.TextCase(text=text.text, case="upper").text),
    }
    for message, call in cases.items():
        exc, line = _raised_at(call)
        assert message in str(exc), (message, str(exc))
        source = Path(__file__).read_text().splitlines()[line - 1]
        assert "lambda" in source  # the traceback points at the line that wrote the mistake
    value_range = wf.node("IntMath", a=1, b=2, operation="add")
    assert value_range.id == "4"  # refused nodes took no id
    assert len(wf) == 4


def test_publish_writes_the_marker_the_server_reads(engine: Engine) -> None:
    wf = Workflow(engine)
    question = wf.TextValue(value="")
    answer = wf.TextTemplate(template="You asked: {a}", a=question.text)
    wf.DisplayText(text=answer.text)
    marker = wf.publish("echo-bot", input=question.input("value"), output=answer.text)
    path = wf.save_published()
    assert path == Path(engine.home.user) / "default" / "workflows" / "echo-bot.json"
    publication = read_publication(path, json.loads(path.read_text()))
    assert publication is not None and publication.model == "echo-bot"
    assert publication.input == ("1", "value") and publication.output == ("2", 0)
    assert marker["input"] == {"node": 1, "input": "value"}
    with pytest.raises(BuilderError, match="has no input 'prompt'"):
        question.input("prompt")


def test_stubs_make_a_type_checker_catch_wrong_inputs(engine: Engine, tmp_path: Path) -> None:
    stubs = tmp_path / "stubs"
    done = subprocess.run([sys.executable, "-m", "partyflow", "nodes", "stubs", "-o", str(stubs), "--home",
                           str(engine.home.root)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    stub = (stubs / "partyflow_nodes" / "__init__.pyi").read_text()
    assert "def TextValue(self, *, value: str | Output[Literal['STRING']] = ...) -> TextValueNode:" in stub
    script = tmp_path / "flow.py"
    script.write_text(
        "from partyflow import Engine\nfrom partyflow_nodes import Workflow\n\n"
        "wf = Workflow(Engine())\nnumber = wf.IntValue(value=3)\n"
        "wf.TextLength(text=wf.TextValue(value='hi').text)\n"
        "wf.TextLength(text=number.value)\n"
        "wf.TextValue(valeu='x')\n")
    env = {**os.environ, "MYPYPATH": str(stubs)}
    checked = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent",
                              "--cache-dir", os.devnull, str(script)], capture_output=True, text=True, env=env,
                             timeout=300, cwd=tmp_path)
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, checked.stdout
    assert "flow.py:7:" in errors[0] and "Output[Literal['INT']]" in errors[0]
    assert "flow.py:8:" in errors[1] and 'did you mean "value"' in errors[1]
    runs = subprocess.run([sys.executable, "-c", "from partyflow_nodes import Workflow; print(Workflow.__module__)"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(stubs)}, timeout=60)
    assert runs.stdout.strip() == "partyflow.builder.workflow"
