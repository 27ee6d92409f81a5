"""Real API-format workflows of core nodes run through the engine."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from partyflow import Engine
from partyflow.config import Home

PACKS = Path(__file__).parents[1] / "data" / "core_workflow_packs"  # only the call counter
CORE = Path(__file__).parents[2] / "src" / "partyflow" / "builtin_nodes" / "core"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = Engine(home=tmp_path, load_custom_nodes=False, extra_node_paths=[PACKS], cache="none",
                    builtin_packs=("core",))
    overridden = [c for c in engine.registry if engine.registry.entry(c).pack != "partyflow.builtin_nodes.core"]
    assert overridden == ["CountCalls"], "another pack replaced core nodes; these tests would test it instead"
    return engine


def calls(engine: Engine) -> Counter[str]:
    log = Home(engine.home.root).output / "calls.log"
    return Counter(log.read_text(encoding="utf-8").split()) if log.exists() else Counter()


def node(class_type: str, **inputs) -> dict:
    return {"class_type": class_type, "inputs": inputs}


def shown(result, node_id: str) -> str:
    assert result.status == "success", result.error and result.error.describe()
    (text,) = result.outputs[node_id]["text"]
    return text


# --- lazy switch ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("condition", "chosen", "skipped"), [(True, "yes", "no"), (False, "no", "yes")])
def test_lazy_switch_runs_only_the_chosen_branch(engine, condition, chosen, skipped):
    prompt = {
        "1": node("BooleanValue", value=condition),
        "2": node("TextValue", value="yes"),
        "3": node("CountCalls", value=["2", 0], label="yes"),
        "4": node("TextValue", value="no"),
        "5": node("CountCalls", value=["4", 0], label="no"),
        "6": node("LazySwitch", condition=["1", 0], on_true=["3", 0], on_false=["5", 0]),
        "7": node("DisplayText", text=["6", 0]),
    }
    result = engine.run(prompt)
    assert shown(result, "7") == chosen
    assert calls(engine) == Counter({chosen: 1})
    assert ("3" if skipped == "yes" else "5") not in result.executed


def test_and_does_not_compute_b_when_a_is_false(engine):
    prompt = {
        "1": node("BooleanValue", value=False),
        "2": node("BooleanValue", value=True),
        "3": node("CountCalls", value=["2", 0], label="b"),
        "4": node("BooleanAnd", a=["1", 0], b=["3", 0]),
        "5": node("DisplayValue", value=["4", 0]),
    }
    assert shown(engine.run(prompt), "5") == "false"
    assert calls(engine) == Counter()


# --- loops -------------------------------------------------------------------------------------------------------


def counting_loop(limit: int, max_iterations: int = 1000) -> dict:
    """value_1 counts up from 0 while it is below `limit`; value_2 collects the text of each step."""
    return {
        "1": node("IntValue", value=0),
        "2": node("TextValue", value=""),
        "10": node("WhileLoopOpen", value_1=["1", 0], value_2=["2", 0]),
        "11": node("IntMath", a=["10", 1], operation="add", b=1),
        "12": node("CountCalls", value=["11", 0], label="body"),
        "13": node("TextTemplate", template="{a}{b};", a=["10", 2], b=["12", 0]),
        "14": node("IntValue", value=limit),
        "15": node("CompareValues", a=["12", 0], operation="<", b=["14", 0]),
        "16": node("WhileLoopClose", flow_control=["10", 0], condition=["15", 0], max_iterations=max_iterations,
                   value_1=["12", 0], value_2=["13", 0]),
        "20": node("DisplayValue", value=["16", 0]),
        "21": node("DisplayText", text=["16", 1]),
    }


def test_while_loop_counts_to_n(engine):
    result = engine.run(counting_loop(5))
    assert shown(result, "20") == "5"
    assert shown(result, "21") == "1;2;3;4;5;"
    assert calls(engine)["body"] == 5


def test_while_loop_max_iterations_stops_with_a_clear_error(engine):
    result = engine.run(counting_loop(50, max_iterations=4))
    assert result.status == "error"
    assert "max_iterations" in result.error.message and "condition is still true" in result.error.message
    assert calls(engine)["body"] == 4


def for_each(items_json: str) -> dict:
    return {
        "1": node("JSONParse", text=items_json),
        "2": node("ForEachOpen", items=["1", 0]),
        "3": node("CountCalls", value=["2", 1], label="body"),
        "4": node("TextTemplate", template="{a}#{b}", a=["3", 0], b=["2", 2]),
        "5": node("ForEachClose", flow_control=["2", 0], result=["4", 0], max_iterations=100),
        "6": node("JSONDump", data=["5", 0], indent=0, sort_keys=False),
        "7": node("DisplayText", text=["6", 0]),
    }


def test_for_each_accumulates_results_in_order(engine):
    result = engine.run(for_each('["a", "b", "c"]'))
    assert json.loads(shown(result, "7")) == ["a#0", "b#1", "c#2"]
    assert calls(engine)["body"] == 3


def test_for_each_over_an_empty_list_runs_no_body(engine):
    assert shown(engine.run(for_each("[]")), "7") == "[]"
    assert calls(engine)["body"] == 0


def test_for_each_results_that_look_like_links_stay_values(engine):
    prompt = for_each('[["x", 1], ["y", 2]]')
    prompt["4"] = node("JSONGet", data=["3", 0], path="", required=True)
    assert json.loads(shown(engine.run(prompt), "7")) == [["x", 1], ["y", 2]]


# --- lists ---------------------------------------------------------------------------------------------------------


def test_list_mapping_runs_a_node_per_item_and_gathers_them(engine):
    prompt = {
        "1": node("ListFromText", text="red\ngreen\n\nblue", separator="\\n", strip=True, skip_empty=True),
        "2": node("TextCase", text=["1", 0], case="upper"),
        "3": node("CountCalls", value=["2", 0], label="item"),
        "4": node("ListJoin", items=["3", 0], separator=","),
        "5": node("DisplayText", text=["4", 0]),
        "6": node("ListLength", items=["2", 0]),
        "7": node("DisplayValue", value=["6", 0]),
        "8": node("ListGetItem", items=["2", 0], index=-1),
        "9": node("DisplayValue", value=["8", 0]),
    }
    result = engine.run(prompt)
    assert shown(result, "5") == "RED,GREEN,BLUE"
    assert shown(result, "7") == "3"
    assert shown(result, "9") == "BLUE"
    assert calls(engine)["item"] == 3


def test_int_range_maps_through_math_into_json(engine):
    prompt = {
        "1": node("IntRange", start=0, stop=4, step=1),
        "2": node("IntMath", a=["1", 0], operation="multiply", b=10),
        "3": node("ListToJSON", items=["2", 0]),
        "4": node("JSONDump", data=["3", 0], indent=0, sort_keys=False),
        "5": node("DisplayText", text=["4", 0]),
    }
    assert shown(engine.run(prompt), "5") == "[0,10,20,30]"


# --- files -----------------------------------------------------------------------------------------------------------


def test_file_round_trip(engine):
    home = Home(engine.home.root)
    (home.input / "people.json").write_text('{"people": [{"name": "ann"}]}', encoding="utf-8")
    prompt = {
        "1": node("LoadJSONFile", path="people.json", max_bytes=10_000),
        "2": node("TextValue", value="bob"),
        "3": node("JSONSet", data=["1", 0], path="people[1].name", value=["2", 0], create_missing=True),
        "4": node("SaveJSONFile", data=["3", 0], path="out/people.json", indent=2, if_exists="overwrite"),
        "5": node("JSONGet", data=["3", 0], path="people[-1].name", required=True),
        "6": node("TextCase", text=["5", 1], case="title"),
        "7": node("SaveTextFile", text=["6", 0], path="out/name.txt", if_exists="overwrite"),
    }
    result = engine.run(prompt)
    assert result.status == "success", result.error
    assert result.outputs["4"] == {"text": ["out/people.json"]}
    saved = json.loads((home.output / "out/people.json").read_text(encoding="utf-8"))
    assert saved == {"people": [{"name": "ann"}, {"name": "bob"}]}
    assert (home.output / "out/name.txt").read_text(encoding="utf-8") == "Bob"


@pytest.mark.parametrize("path", ["../escape.txt", "/tmp/escape.txt"])
def test_a_workflow_cannot_write_outside_the_output_directory(engine, path):
    prompt = {"1": node("TextValue", value="x"),
              "2": node("SaveTextFile", text=["1", 0], path=path, if_exists="overwrite")}
    result = engine.run(prompt)
    assert result.status == "error" and "refused" in result.error.message
    assert not (engine.home.root / "escape.txt").exists()


# --- text and JSON pipelines ------------------------------------------------------------------------------------------


def test_regex_pipeline_extracts_and_joins(engine):
    prompt = {
        "1": node("MultilineText", value="Contact ann@example.com or bob@example.org today."),
        "2": node("TextRegexExtract", text=["1", 0], pattern=r"(\w+)@[\w.]+", group=1, ignore_case=False,
                  multiline=False),
        "3": node("TextJoin", items=["2", 1], separator=" & "),
        "4": node("TextRegexReplace", text=["3", 0], pattern=r"\s*&\s*", replacement=" and ", count=0,
                  ignore_case=False, multiline=False),
        "5": node("DisplayText", text=["4", 0]),
    }
    assert shown(engine.run(prompt), "5") == "ann and bob"


def test_json_pipeline_reads_paths_and_fills_a_template(engine):
    prompt = {
        "1": node("JSONParse", text='{"user": {"name": "Ann", "langs": ["py", "rs"]}}'),
        "2": node("JSONGet", data=["1", 0], path="user.name", required=True),
        "3": node("JSONGet", data=["1", 0], path="user.langs[1]", required=True),
        "4": node("TextTemplate", template="{a} writes {b}", a=["2", 0], b=["3", 0]),
        "5": node("DisplayText", text=["4", 0]),
        "6": node("JSONBuildObject", key_1="who", key_2="", key_3="", key_4="", value_1=["2", 0]),
        "7": node("DisplayValue", value=["6", 0]),
    }
    result = engine.run(prompt)
    assert shown(result, "5") == "Ann writes rs"
    assert json.loads(shown(result, "7")) == {"who": "Ann"}


def test_a_bad_regex_fails_the_run_with_a_clear_message(engine):
    prompt = {
        "1": node("TextValue", value="abc"),
        "2": node("TextRegexMatch", text=["1", 0], pattern="(a", ignore_case=False, multiline=False),
        "3": node("DisplayValue", value=["2", 0]),
    }
    result = engine.run(prompt)
    assert result.status == "error" and result.error.node_id == "2"
    assert "invalid regular expression '(a'" in result.error.message


def test_gate_skips_everything_downstream(engine):
    prompt = {
        "1": node("TextValue", value="secret"),
        "2": node("ExecutionGate", value=["1", 0], enabled=False, message=""),
        "3": node("CountCalls", value=["2", 0], label="after"),
        "4": node("DisplayText", text=["3", 0]),
        "5": node("DisplayText", text=["1", 0]),
    }
    result = engine.run(prompt)
    assert result.status == "success" and "4" not in result.outputs
    assert shown(result, "5") == "secret"
    assert calls(engine) == Counter()


# --- the pack as a ComfyUI custom node folder -------------------------------------------------------------------------


def test_the_pack_loads_from_a_custom_nodes_folder(tmp_path):
    shutil.copytree(CORE, tmp_path / "custom_nodes" / "partyflow_core", ignore=shutil.ignore_patterns("__pycache__"))
    engine = Engine(home=tmp_path, builtin_packs=(), cache="none")
    assert all(result.ok for result in engine.pack_results), [r.error for r in engine.pack_results]
    result = engine.run(counting_loop(3) | {"12": node("IntMath", a=["11", 0], operation="add", b=0)})
    assert shown(result, "20") == "3"
