"""The core node pack, called directly through ComfyUI's node interface (no engine)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from partyflow.config import Home
from partyflow.nodes.comfy_compat import install_compat_modules
from partyflow.nodes.host import HostContext, NodeScope, host_context, node_scope
from partyflow.nodes.protocol import define
from partyflow.nodes.registry import NodeRegistry
from partyflow.nodes.values import ExecutionBlocker

install_compat_modules()  # the pack imports folder_paths and comfy_execution like any ComfyUI pack

from partyflow.builtin_nodes import core  # noqa: E402
from partyflow.builtin_nodes.core import (  # noqa: E402
    display,
    files,
    json_nodes,
    lists,
    logic,
    loops,
    math_nodes,
    primitives,
    text,
)


def call(cls, **inputs):
    """Call a node the way a host does: a fresh instance, FUNCTION with keyword inputs."""
    instance = cls()
    return getattr(instance, cls.FUNCTION)(**inputs)


@pytest.fixture
def home(tmp_path: Path):
    home = Home(tmp_path).ensure()
    with host_context(HostContext(home=home, registry=NodeRegistry())):
        yield home


# --- the pack as a whole ---------------------------------------------------------------------------------------


def test_every_node_follows_the_interface_with_descriptions_and_tooltips():
    assert set(core.NODE_CLASS_MAPPINGS) == set(core.NODE_DISPLAY_NAME_MAPPINGS)
    assert len(core.NODE_CLASS_MAPPINGS) >= 45
    for class_type, cls in core.NODE_CLASS_MAPPINGS.items():
        definition = define(class_type, cls, display_name=core.NODE_DISPLAY_NAME_MAPPINGS[class_type])
        assert definition.category.startswith("partyflow/"), class_type
        assert definition.description, class_type
        assert not class_type.startswith("PF_"), class_type
        for spec in definition.inputs.values():
            assert spec.options.get("tooltip"), f"{class_type}.{spec.name} has no tooltip"


def test_registers_in_a_registry_with_object_info():
    registry = NodeRegistry()
    registry.register_mappings(core.NODE_CLASS_MAPPINGS, core.NODE_DISPLAY_NAME_MAPPINGS, pack="core",
                               python_module="partyflow.builtin_nodes.core")
    info = registry.object_info("LazySwitch")["LazySwitch"]
    assert info["input"]["required"]["on_true"][1]["lazy"] is True
    assert info["display_name"] == "Switch (lazy)"
    assert registry.object_info("ListFromText")["ListFromText"]["output_is_list"] == [True]


def test_any_type_connects_to_every_type_even_under_strict_comparison():
    from partyflow.builtin_nodes.core.sockets import ANY
    assert ANY == "*" and not (ANY != "IMAGE") and hash(ANY) == hash("*")


# --- primitives ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "value", "expected"), [
    (primitives.TextValue, "hi", "hi"),
    (primitives.MultilineText, "a\nb", "a\nb"),
    (primitives.IntValue, 7, 7),
    (primitives.FloatValue, 2, 2.0),
    (primitives.BooleanValue, 1, True),
])
def test_primitives_output_their_value(cls, value, expected):
    (result,) = call(cls, value=value)
    assert result == expected and type(result) is type(expected)


def test_multiline_text_has_a_multiline_widget():
    assert primitives.MultilineText.INPUT_TYPES()["required"]["value"][1]["multiline"] is True


# --- text ----------------------------------------------------------------------------------------------------------


def test_concatenate_and_replace():
    assert call(text.TextConcatenate, text_a="a", text_b="b", separator=" + ") == ("a + b",)
    assert call(text.TextReplace, text="a-b-c", find="-", replace="/") == ("a/b/c",)
    with pytest.raises(ValueError, match="'find' is empty"):
        call(text.TextReplace, text="abc", find="", replace="x")


def test_regex_match_replace_extract():
    flags = {"ignore_case": False, "multiline": False}
    assert call(text.TextRegexMatch, text="Order 42", pattern=r"\d+", **flags) == (True,)
    assert call(text.TextRegexMatch, text="ORDER", pattern="order", ignore_case=True, multiline=False) == (True,)
    assert call(text.TextRegexMatch, text="a\nb", pattern="^b$", ignore_case=False, multiline=True) == (True,)
    assert call(text.TextRegexMatch, text="none", pattern=r"\d", **flags) == (False,)
    assert call(text.TextRegexReplace, text="a1b22", pattern=r"(\d+)", replacement=r"<\1>", count=0,
                **flags) == ("a<1>b<22>",)
    assert call(text.TextRegexReplace, text="a1b2", pattern=r"\d", replacement="#", count=1, **flags) == ("a#b2",)
    first, found_all, found = call(text.TextRegexExtract, text="x@a.com y@b.org", pattern=r"(\w+)@(\w+)",
                                   group=2, **flags)
    assert (first, found_all, found) == ("a", ["a", "b"], True)
    assert call(text.TextRegexExtract, text="none", pattern=r"\d", group=0, **flags) == ("", [], False)


@pytest.mark.parametrize(("cls", "extra"), [
    (text.TextRegexMatch, {}),
    (text.TextRegexReplace, {"replacement": "", "count": 0}),
    (text.TextRegexExtract, {"group": 0}),
])
def test_a_bad_pattern_is_a_clear_error(cls, extra):
    with pytest.raises(ValueError, match=r"invalid regular expression '\(ab': missing \), .* at position 0"):
        call(cls, text="ab", pattern="(ab", ignore_case=False, multiline=False, **extra)


def test_regex_bad_replacement_and_missing_group_are_clear():
    with pytest.raises(ValueError, match="invalid replacement"):
        call(text.TextRegexReplace, text="ab", pattern="a", replacement=r"\3", count=0, ignore_case=False,
             multiline=False)
    with pytest.raises(ValueError, match="has 1 group.*group 2 does not exist"):
        call(text.TextRegexExtract, text="ab", pattern="(a)", group=2, ignore_case=False, multiline=False)


def test_split_and_join():
    assert call(text.TextSplit, text=" a, b,,c ", separator=",", strip=True, skip_empty=True) == (["a", "b", "c"],)
    assert call(text.TextSplit, text="a,,b", separator=",", strip=False, skip_empty=False) == (["a", "", "b"],)
    assert call(text.TextSplit, text="l1\nl2", separator="\\n", strip=True, skip_empty=True) == (["l1", "l2"],)
    with pytest.raises(ValueError, match="separator is empty"):
        call(text.TextSplit, text="abc", separator="", strip=True, skip_empty=True)
    assert call(text.TextJoin, items=["a", 1, {"k": True}], separator=" | ") == ('a | 1 | {"k": true}',)
    with pytest.raises(ValueError, match="must be a list"):
        call(text.TextJoin, items="abc", separator=",")


def test_template_fills_from_json_and_named_inputs():
    (result,) = call(text.TextTemplate, template="Hi {user}, {a} {{literal}} {not json}",
                     values={"user": "Ann", "a": "json"}, a=3)
    assert result == "Hi Ann, 3 {literal} {not json}"


def test_template_missing_key_and_bad_values_are_clear():
    with pytest.raises(ValueError, match=r"placeholder \{name\} has no value \(values given: a, user\)"):
        call(text.TextTemplate, template="{name}", values={"user": 1}, a="x")
    with pytest.raises(ValueError, match="must be a JSON object"):
        call(text.TextTemplate, template="{a}", values=[1])


def test_template_cannot_reach_attributes():
    """Only {identifier} is a placeholder, so a template cannot walk into a value's attributes."""
    assert call(text.TextTemplate, template="{a.__class__}", a="x") == ("{a.__class__}",)


def test_trim_case_length():
    assert call(text.TextTrim, text="  x  ", side="both", characters="") == ("x",)
    assert call(text.TextTrim, text="--x--", side="start", characters="-") == ("x--",)
    assert call(text.TextTrim, text="  x  ", side="end", characters="") == ("  x",)
    with pytest.raises(ValueError, match="unknown side"):
        call(text.TextTrim, text="x", side="middle", characters="")
    assert call(text.TextCase, text="hello world", case="title") == ("Hello World",)
    assert call(text.TextCase, text="Hi", case="upper") == ("HI",)
    with pytest.raises(ValueError, match="unknown case"):
        call(text.TextCase, text="x", case="shout")
    assert call(text.TextLength, text="héllo") == (5,)


@pytest.mark.parametrize(("raw", "expected"), [(" 42 ", (42, 42.0)), ("3.75", (3, 3.75)), ("-1e2", (-100, -100.0))])
def test_text_to_number(raw, expected):
    assert call(text.TextToNumber, text=raw) == expected


@pytest.mark.parametrize("raw", ["abc", "", "nan", "inf"])
def test_text_to_number_refuses_non_numbers(raw):
    with pytest.raises(ValueError, match="number"):
        call(text.TextToNumber, text=raw)


# --- JSON ------------------------------------------------------------------------------------------------------------


def test_parse_and_dump():
    assert call(json_nodes.JSONParse, text='{"a": [1, 2]}') == ({"a": [1, 2]},)
    assert call(json_nodes.JSONDump, data={"b": 1, "a": "é"}, indent=0, sort_keys=True) == ('{"a":"é","b":1}',)
    assert call(json_nodes.JSONDump, data=[1], indent=2, sort_keys=False) == ("[\n  1\n]",)


def test_parse_error_names_line_and_column():
    with pytest.raises(ValueError, match=r"line 2, column 9: Expecting ',' delimiter"):
        call(json_nodes.JSONParse, text='{"a": 1,\n "b": 2 "c": 3}')


@pytest.mark.parametrize("value", [float("nan"), {"x": {1, 2}}, object()])
def test_dump_refuses_values_without_json_form(value):
    with pytest.raises(ValueError, match="cannot write JSON"):
        call(json_nodes.JSONDump, data=value, indent=0, sort_keys=False)


DOC = {"a": {"b": [{"c": 1}, {"c": 2}]}, "odd.key": "x"}


@pytest.mark.parametrize(("path", "expected"), [
    ("a.b[0].c", 1), ("a.b[-1].c", 2), ("a.b.1.c", 2), ('["odd.key"]', "x"), ("", DOC), ("a.b", DOC["a"]["b"]),
])
def test_get_by_path(path, expected):
    value, as_text, found = call(json_nodes.JSONGet, data=DOC, path=path, required=True)
    assert value == expected and found
    assert as_text == (expected if isinstance(expected, str) else json.dumps(expected, separators=(",", ":")))


def test_get_missing_path_is_clear_or_null():
    with pytest.raises(ValueError, match=r"path 'a\.b\[5\]\.c' not found: no \[5\] in a list of 2 at a\.b"):
        call(json_nodes.JSONGet, data=DOC, path="a.b[5].c", required=True)
    assert call(json_nodes.JSONGet, data=DOC, path="a.zz", required=False) == (None, "", False)


@pytest.mark.parametrize("path", ["a..b", ".a", "a[x]", "a[0", "a[0]b", "a."])
def test_malformed_paths_are_refused(path):
    with pytest.raises(ValueError, match="bad path"):
        call(json_nodes.JSONGet, data=DOC, path=path, required=True)


def test_set_by_path_copies_and_creates():
    original = json.loads(json.dumps(DOC))
    (result,) = call(json_nodes.JSONSet, data=DOC, path="a.b[0].c", value=9, create_missing=True)
    assert result["a"]["b"][0]["c"] == 9 and DOC == original
    (result,) = call(json_nodes.JSONSet, data={}, path="x.y[0]", value="v", create_missing=True)
    assert result == {"x": {"y": ["v"]}}
    (result,) = call(json_nodes.JSONSet, data=[1], path="[1]", value=2, create_missing=True)
    assert result == [1, 2]
    (result,) = call(json_nodes.JSONSet, data={"p": [{}]}, path="p[1].name", value="b", create_missing=True)
    assert result == {"p": [{}, {"name": "b"}]}
    with pytest.raises(ValueError, match="cannot go into a list of 1 with 2"):
        call(json_nodes.JSONSet, data={"p": [{}]}, path="p[2].name", value="b", create_missing=True)
    with pytest.raises(ValueError, match="cannot set path 'x.y'"):
        call(json_nodes.JSONSet, data={}, path="x.y", value=1, create_missing=False)
    with pytest.raises(ValueError, match="cannot set"):
        call(json_nodes.JSONSet, data={"a": 1}, path="a.b", value=1, create_missing=True)


def test_build_object_and_list():
    keys = {"key_1": "name", "key_2": "", "key_3": "n", "key_4": ""}
    (result,) = call(json_nodes.JSONBuildObject, base={"keep": 1}, value_1="Ann", value_3=3, **keys)
    assert result == {"keep": 1, "name": "Ann", "n": 3}
    with pytest.raises(ValueError, match="value_2 is connected but key_2 is empty"):
        call(json_nodes.JSONBuildObject, value_2="x", **keys)
    with pytest.raises(ValueError, match="must be a JSON object"):
        call(json_nodes.JSONBuildObject, base=[1], **keys)
    assert call(json_nodes.JSONBuildList, base=[0], item_1="a", item_3=2) == ([0, "a", 2],)
    with pytest.raises(ValueError, match="must be a JSON list"):
        call(json_nodes.JSONBuildList, base="x")


# --- math ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("operation", "expected"), [
    ("add", 9), ("subtract", 5), ("multiply", 14), ("floor divide", 3), ("modulo", 1), ("power", 49),
    ("min", 2), ("max", 7),
])
def test_int_math(operation, expected):
    assert call(math_nodes.IntMath, a=7, operation=operation, b=2) == (expected,)


@pytest.mark.parametrize(("operation", "expected"), [("divide", 3.5), ("power", 49.0), ("modulo", 1.0)])
def test_float_math(operation, expected):
    assert call(math_nodes.FloatMath, a=7.0, operation=operation, b=2.0) == (expected,)


@pytest.mark.parametrize(("cls", "a", "operation", "b", "message"), [
    (math_nodes.IntMath, 1, "floor divide", 0, "division by zero"),
    (math_nodes.IntMath, 1, "modulo", 0, "division by zero"),
    (math_nodes.IntMath, 2, "power", -1, "fraction"),
    (math_nodes.IntMath, 10, "power", 10**6, "too large"),
    (math_nodes.IntMath, 1, "eval('1')", 1, "unknown operation"),
    (math_nodes.FloatMath, 1.0, "divide", 0.0, "division by zero"),
    (math_nodes.FloatMath, 10.0, "power", 1000.0, "too large"),
    (math_nodes.FloatMath, -8.0, "power", 0.5, "no finite real result"),
])
def test_math_errors_are_clear(cls, a, operation, b, message):
    with pytest.raises(ValueError, match=message):
        call(cls, a=a, operation=operation, b=b)


@pytest.mark.parametrize(("a", "operation", "b", "expected"), [
    (1, "<", 2.5, True), (3, ">=", 3, True), ("a", "==", "b", False), ("a", "!=", "b", True), (2, "<=", 1, False),
])
def test_compare(a, operation, b, expected):
    assert call(math_nodes.CompareValues, a=a, operation=operation, b=b) == (expected,)


def test_compare_incomparable_types_is_clear():
    with pytest.raises(ValueError, match="cannot compare str < int"):
        call(math_nodes.CompareValues, a="a", operation="<", b=1)


# --- logic -----------------------------------------------------------------------------------------------------------


def test_switch_asks_only_for_the_chosen_branch():
    switch = logic.LazySwitch()
    assert switch.check_lazy_status(condition=True, on_true=None, on_false=None) == ["on_true"]
    assert switch.check_lazy_status(condition=False, on_true=None, on_false=None) == ["on_false"]
    assert switch.check_lazy_status(condition=True, on_true="t", on_false=None) == []
    assert switch.run(condition=True, on_true="t", on_false=None) == ("t",)
    assert switch.run(condition=False, on_true=None, on_false="f") == ("f",)


def test_and_or_not_short_circuit():
    assert logic.BooleanAnd().check_lazy_status(a=False, b=None) == []
    assert logic.BooleanAnd().check_lazy_status(a=True, b=None) == ["b"]
    assert logic.BooleanOr().check_lazy_status(a=True, b=None) == []
    assert logic.BooleanOr().check_lazy_status(a=False, b=None) == ["b"]
    assert call(logic.BooleanAnd, a=True, b=True) == (True,)
    assert call(logic.BooleanAnd, a=False) == (False,)
    assert call(logic.BooleanOr, a=False, b=True) == (True,)
    assert call(logic.BooleanOr, a=False, b=False) == (False,)
    assert call(logic.BooleanNot, value=False) == (True,)


def test_gate_blocks_downstream():
    assert call(logic.ExecutionGate, value=5, enabled=True, message="") == (5,)
    (blocked,) = call(logic.ExecutionGate, value=5, enabled=False, message="")
    assert isinstance(blocked, ExecutionBlocker) and blocked.message is None
    (blocked,) = call(logic.ExecutionGate, value=5, enabled=False, message="skipped")
    assert blocked.message == "skipped"


# --- lists -----------------------------------------------------------------------------------------------------------


def test_list_flags():
    assert lists.ListFromText.OUTPUT_IS_LIST == (True,) and lists.IntRange.OUTPUT_IS_LIST == (True,)
    for cls in (lists.ListToJSON, lists.ListLength, lists.ListGetItem, lists.ListJoin):
        assert cls.INPUT_IS_LIST is True


def test_list_nodes():
    assert call(lists.ListFromText, text="a\n\n b \n", separator="\\n", strip=True, skip_empty=True) == (["a", "b"],)
    assert call(lists.ListFromJSON, data=[1, "x"]) == ([1, "x"],)
    with pytest.raises(ValueError, match="must be a JSON list"):
        call(lists.ListFromJSON, data={"a": 1})
    assert call(lists.ListToJSON, items=[1, 2]) == ([1, 2],)
    assert call(lists.ListLength, items=["a", "b", "c"]) == (3,)
    assert call(lists.ListGetItem, items=["a", "b", "c"], index=[-1]) == ("c",)
    with pytest.raises(IndexError, match="index 3 is out of range for 3 item"):
        call(lists.ListGetItem, items=["a", "b", "c"], index=[3])
    assert call(lists.ListJoin, items=["a", 2, [3]], separator=["\\n"]) == ("a\n2\n[3]",)
    assert call(lists.IntRange, start=5, stop=0, step=-2) == ([5, 3, 1],)
    with pytest.raises(ValueError, match="step is 0"):
        call(lists.IntRange, start=0, stop=5, step=0)
    with pytest.raises(ValueError, match="the limit is"):
        call(lists.IntRange, start=0, stop=10**9, step=1)


# --- loops -----------------------------------------------------------------------------------------------------------


class FakeDynamicPrompt:
    """The part of DYNPROMPT the loop nodes use: nodes by id, with links as [id, index]."""

    def __init__(self, nodes):
        self.nodes = nodes

    def get_node(self, node_id):
        return self.nodes[node_id]


def while_prompt(open_inputs=None):
    """open(1) -> add(2) -> compare(3) -> close(4); 5 is a constant outside the loop, 6 hangs off the body."""
    return FakeDynamicPrompt({
        "1": {"class_type": "WhileLoopOpen", "inputs": {"value_1": ["5", 0], **(open_inputs or {})}},
        "2": {"class_type": "IntMath", "inputs": {"a": ["1", 1], "operation": "add", "b": 1}},
        "3": {"class_type": "CompareValues", "inputs": {"a": ["2", 0], "operation": "<", "b": ["5", 0]}},
        "4": {"class_type": "WhileLoopClose", "inputs": {"flow_control": ["1", 0], "condition": ["3", 0],
                                                         "max_iterations": 10, "value_1": ["2", 0]}},
        "5": {"class_type": "IntValue", "inputs": {"value": 3}},
        "6": {"class_type": "DisplayValue", "inputs": {"value": ["2", 0]}},
    })


def close_while(dyn, condition, **values):
    return loops.WhileLoopClose().run(flow_control=["1", 0], condition=condition, max_iterations=10,
                                      dynprompt=dyn, unique_id="4", **values)


def test_loop_body_is_the_nodes_between_open_and_close():
    assert sorted(loops.loop_body(while_prompt(), "1", "4")) == ["1", "2", "3", "4"]


def test_while_open_passes_values_and_iteration():
    assert call(loops.WhileLoopOpen, value_1=1, value_3="x") == ("while", 1, None, "x", None, 0)
    assert call(loops.WhileLoopOpen, iteration=2, value_1={"partyflow_loop_value": ["a", 1]})[1] == ["a", 1]


def test_while_close_outputs_values_when_the_condition_is_false():
    assert close_while(while_prompt(), False, value_1=3, value_2="s") == (3, "s", None, None)


def test_while_close_expands_into_a_fresh_pass():
    result = close_while(while_prompt(), True, value_1=1, value_2=["n", 2])
    graph = result["expand"]
    prefix = "4.0.0#1."  # the close node's GraphBuilder prefix, then the pass number
    assert set(graph) == {prefix + "1", prefix + "2", prefix + "3", prefix + "Recurse"}
    next_open = graph[prefix + "1"]["inputs"]
    assert next_open["value_1"] == 1 and next_open["iteration"] == 1
    assert next_open["value_2"] == {"partyflow_loop_value": ["n", 2]}  # not mistaken for a link
    assert graph[prefix + "2"]["inputs"]["a"] == [prefix + "1", 1]
    assert graph[prefix + "3"]["inputs"]["b"] == ["5", 0]  # outside the loop: still the original node
    assert graph[prefix + "Recurse"]["inputs"]["flow_control"] == [prefix + "1", 0]
    assert result["result"] == tuple([prefix + "Recurse", i] for i in range(4))


def test_copies_of_copies_keep_ids_of_one_length():
    first = close_while(while_prompt(), True, value_1=1)["expand"]
    dyn = FakeDynamicPrompt({**while_prompt().nodes, **first})
    scope = NodeScope(prompt_id="p", node_id="4.0.0#1.Recurse", report_progress=lambda *_: None,
                      interrupt=threading.Event())
    with node_scope(scope):  # later passes keep the loop's root and count passes instead of nesting prefixes
        second = loops.WhileLoopClose().run(flow_control=["4.0.0#1.1", 0], condition=True, max_iterations=10,
                                            dynprompt=dyn, unique_id="4.0.0#1.Recurse", value_1=2)
    assert set(second["expand"]) == {f"4.0.0#2.{n}" for n in ("1", "2", "3", "Recurse")}
    assert second["expand"]["4.0.0#2.1"]["inputs"]["iteration"] == 2
    assert second["expand"]["4.0.0#2.1"]["override_display_id"] == "4.0.0#1.1"


def test_while_loop_max_iterations_guard():
    with pytest.raises(RuntimeError, match="ran 10 passes \\(max_iterations\\)"):
        close_while(while_prompt({"iteration": 9}), True, value_1=1)
    with pytest.raises(ValueError, match="'iteration' input must be left unconnected"):
        close_while(while_prompt({"iteration": ["5", 0]}), True, value_1=1)


def for_each_prompt(open_inputs=None, close_inputs=None):
    """items(5) -> open(1) -> upper(2) -> close(4)."""
    return FakeDynamicPrompt({
        "5": {"class_type": "JSONParse", "inputs": {"text": '["a", "b"]'}},
        "1": {"class_type": "ForEachOpen", "inputs": {"items": ["5", 0], **(open_inputs or {})}},
        "2": {"class_type": "TextCase", "inputs": {"text": ["1", 1], "case": "upper"}},
        "4": {"class_type": "ForEachClose", "inputs": {"flow_control": ["1", 0], "result": ["2", 0],
                                                       "max_iterations": 100, **(close_inputs or {})}},
    })


def test_for_each_open_gives_the_item_and_position():
    assert call(loops.ForEachOpen, items=["a", "b"], index=1) == ({"index": 1, "total": 2}, "b", 1, 2)
    assert call(loops.ForEachOpen, items=[]) == ({"index": 0, "total": 0}, None, 0, 0)
    with pytest.raises(ValueError, match="must be a JSON list"):
        call(loops.ForEachOpen, items="ab")


def test_for_each_close_accumulates_through_expansion():
    close = loops.ForEachClose()
    state = {"index": 0, "total": 2}
    assert close.check_lazy_status(flow_control=state, result=None) == ["result"]
    expanded = close.run(flow_control=state, max_iterations=100, result="A", dynprompt=for_each_prompt(),
                         unique_id="4")
    graph = expanded["expand"]
    assert graph["4.0.0#1.1"]["inputs"] == {"items": ["5", 0], "index": 1}
    assert graph["4.0.0#1.Recurse"]["inputs"]["accumulated"] == ["A"]
    assert expanded["result"] == (["4.0.0#1.Recurse", 0],)
    last = close.run(flow_control={"index": 1, "total": 2}, max_iterations=100, result="B", accumulated=["A"])
    assert last == (["A", "B"],)


def test_for_each_close_on_an_empty_list_needs_no_body():
    close = loops.ForEachClose()
    assert close.check_lazy_status(flow_control={"index": 0, "total": 0}, result=None) == []
    assert close.run(flow_control={"index": 0, "total": 0}, max_iterations=5) == ([],)


def test_for_each_close_errors():
    with pytest.raises(RuntimeError, match="has 6 items, more than max_iterations=5"):
        loops.ForEachClose().run(flow_control={"index": 0, "total": 6}, max_iterations=5, result=1)
    with pytest.raises(ValueError, match="must come from a For Each Open node"):
        loops.ForEachClose().run(flow_control="stub", max_iterations=5, result=1)


def test_close_not_downstream_of_open_is_clear():
    dyn = FakeDynamicPrompt({
        "1": {"class_type": "WhileLoopOpen", "inputs": {}},
        "4": {"class_type": "WhileLoopClose", "inputs": {"flow_control": ["9", 0], "condition": True}},
        "9": {"class_type": "WhileLoopOpen", "inputs": {}},
    })
    with pytest.raises(ValueError, match="not downstream of its open node"):
        loops.copy_loop(dyn, "1", "4")


# --- files -----------------------------------------------------------------------------------------------------------


def test_text_file_round_trip_with_subfolders(home):
    (saved,) = call(files.SaveTextFile, text="héllo", path="notes/day/a.txt", if_exists="overwrite")["result"]
    assert saved == "notes/day/a.txt"
    assert (home.output / "notes/day/a.txt").read_text(encoding="utf-8") == "héllo"
    (home.input / "in.txt").write_text("input text", encoding="utf-8")
    assert call(files.LoadTextFile, path="in.txt", max_bytes=1000) == ("input text",)


def test_json_file_round_trip(home):
    result = call(files.SaveJSONFile, data={"a": [1, "é"]}, path="d.json", indent=0, if_exists="overwrite")
    assert result["ui"] == {"text": ["d.json"]}
    written = (home.output / "d.json").read_text(encoding="utf-8")
    assert json.loads(written) == {"a": [1, "é"]}
    (home.input / "d.json").write_text(written, encoding="utf-8")
    assert call(files.LoadJSONFile, path="d.json", max_bytes=1000) == ({"a": [1, "é"]},)


def test_load_json_error_names_the_file_and_line(home):
    (home.input / "bad.json").write_text('{\n  "a": }', encoding="utf-8")
    with pytest.raises(ValueError, match=r"invalid JSON in 'bad.json' at line 2, column 8"):
        call(files.LoadJSONFile, path="bad.json", max_bytes=1000)


@pytest.mark.parametrize("path", ["/etc/passwd", "../secret.txt", "a/../../x.txt", "..\\x.txt", "C:\\x.txt", ""])
def test_paths_outside_the_directory_are_refused(home, path):
    with pytest.raises(ValueError, match="refused|empty"):
        call(files.LoadTextFile, path=path, max_bytes=100)
    with pytest.raises(ValueError, match="refused|empty"):
        call(files.SaveTextFile, text="x", path=path, if_exists="overwrite")
    assert not (home.root / "secret.txt").exists() and not (home.root / "x.txt").exists()


def test_a_symlink_cannot_lead_out(home, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text("s", encoding="utf-8")
    os.symlink(outside, home.input / "link")
    with pytest.raises(files.PathNotAllowedError, match="leads outside the input directory"):
        call(files.LoadTextFile, path="link/secret.txt", max_bytes=100)


def test_size_limit_missing_file_and_bad_encoding(home):
    (home.input / "big.txt").write_text("x" * 101, encoding="utf-8")
    with pytest.raises(ValueError, match="101 bytes, over the limit of 100"):
        call(files.LoadTextFile, path="big.txt", max_bytes=100)
    with pytest.raises(FileNotFoundError, match="no file 'nope.txt' in the input directory"):
        call(files.LoadTextFile, path="nope.txt", max_bytes=100)
    (home.input / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        call(files.LoadTextFile, path="bin.txt", max_bytes=100)


def test_if_exists_modes(home):
    save = files.SaveTextFile()
    save.run(text="1", path="f.txt", if_exists="overwrite")
    save.run(text="2", path="f.txt", if_exists="overwrite")
    assert (home.output / "f.txt").read_text() == "2"
    with pytest.raises(FileExistsError, match="already exists"):
        save.run(text="3", path="f.txt", if_exists="fail")
    assert save.run(text="3", path="f.txt", if_exists="new name")["result"] == ("f_00001.txt",)
    assert save.run(text="4", path="f.txt", if_exists="new name")["result"] == ("f_00002.txt",)
    assert (home.output / "f.txt").read_text() == "2"


def test_writes_are_atomic_and_leave_no_temporary_files(home, monkeypatch):
    save = files.SaveTextFile()
    save.run(text="old", path="f.txt", if_exists="overwrite")

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save.run(text="new", path="f.txt", if_exists="overwrite")
    assert (home.output / "f.txt").read_text() == "old"
    assert [p.name for p in home.output.iterdir()] == ["f.txt"]


def test_load_is_changed_follows_the_file(home):
    (home.input / "a.txt").write_text("1", encoding="utf-8")
    before = files.LoadTextFile.IS_CHANGED(path="a.txt", max_bytes=10)
    (home.input / "a.txt").write_text("22", encoding="utf-8")
    assert files.LoadTextFile.IS_CHANGED(path="a.txt", max_bytes=10) != before
    assert files.LoadTextFile.IS_CHANGED(path="../x", max_bytes=10) == "missing"


# --- display ---------------------------------------------------------------------------------------------------------


def test_show_text_returns_ui_text_and_passes_it_on():
    assert display.DisplayText.OUTPUT_NODE is True
    assert call(display.DisplayText, text="hi") == {"ui": {"text": ["hi"]}, "result": ("hi",)}


@pytest.mark.parametrize(("value", "shown"), [
    ({"a": [1]}, '{\n  "a": [\n    1\n  ]\n}'), ("plain", "plain"), (3.5, "3.5"), (None, "null"), (True, "true"),
    ({1, 2}.__class__, "<class 'set'>"),
])
def test_preview_any_shows_values_as_text(value, shown):
    assert call(display.DisplayValue, value=value) == {"ui": {"text": [shown]}, "result": (shown,)}
