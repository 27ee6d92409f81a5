"""Thousands of malformed prompts: validation answers each with a structured error and nothing else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from partyflow.graph.validate import validate_prompt
from partyflow.nodes.registry import NodeRegistry


class Number:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -5, "max": 5}), "mode": (["a", "b"],)},
                "optional": {"text": ("STRING", {"multiline": True})}}
    RETURN_TYPES = ("INT", "STRING")
    FUNCTION = "run"

    def run(self, **inputs):
        return (0, "")


class Sink:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})}, "optional": {"flag": ("BOOLEAN",), "note": ("STRING",)}}
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, **inputs):
        return None

    @classmethod
    def VALIDATE_INPUTS(cls, note=None):
        if note == "explode":
            raise RuntimeError("validator bug")
        return True


def _registry() -> NodeRegistry:
    registry = NodeRegistry()
    registry.register("Number", Number)
    registry.register("Sink", Sink)
    return registry


REGISTRY = _registry()
ISSUE_KEYS = {"type", "message", "details", "extra_info"}

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
ids = st.sampled_from(["1", "2", "3", "x", ""]) | st.text(max_size=3)
links = st.lists(st.one_of(ids, st.integers(-2, 4), scalars), min_size=0, max_size=3)
values = st.recursive(scalars | links, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
input_names = st.sampled_from(["value", "mode", "text", "flag", "note", "other"])
nodes = st.one_of(
    st.fixed_dictionaries({"class_type": st.sampled_from(["Number", "Sink", "Missing", ""]) | scalars,
                           "inputs": st.dictionaries(input_names, values, max_size=4) | scalars}),
    st.dictionaries(st.text(max_size=6), values, max_size=3),
    values,
)
prompts = st.one_of(st.dictionaries(ids, nodes, max_size=6), values)


def _assert_structured(result) -> None:
    body = result.to_json()
    assert set(body) == {"error", "node_errors"}
    if result.ok:
        assert body["error"] is None and body["node_errors"] == {}
        return
    if body["error"] is not None:
        assert set(body["error"]) == ISSUE_KEYS and body["error"]["message"]
    for node_id, entry in body["node_errors"].items():
        assert isinstance(node_id, str)
        assert set(entry) == {"errors", "dependent_outputs", "class_type"}
        assert entry["errors"] and all(set(issue) == ISSUE_KEYS for issue in entry["errors"])
    assert result.summary()


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompts)
def test_malformed_prompts_get_structured_errors(prompt) -> None:
    _assert_structured(validate_prompt(prompt, REGISTRY))


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(["1", "2", "3"]), st.fixed_dictionaries(
    {"class_type": st.sampled_from(["Number", "Sink"]),
     "inputs": st.fixed_dictionaries({"value": st.one_of(st.integers(-10, 10), st.tuples(st.sampled_from(["1", "2", "3", "9"]), st.integers(-1, 2)).map(list))},
                                     optional={"flag": st.sampled_from([True, "yes"]), "note": st.sampled_from(["explode", "ok"]), "mode": st.sampled_from(["a", "c"])})}),
    min_size=1))
def test_near_valid_prompts_get_structured_errors(prompt) -> None:
    _assert_structured(validate_prompt(prompt, REGISTRY))


def test_every_problem_is_reported_in_one_pass() -> None:
    prompt = {
        "1": {"class_type": "Number", "inputs": {"value": 9, "mode": "z"}},
        "2": {"class_type": "Sink", "inputs": {"value": ["1", 1]}},
        "3": {"class_type": "Sink", "inputs": {"value": ["4", 0], "note": "explode"}},
        "4": {"class_type": "Sink", "inputs": {"value": ["3", 0]}},
        "5": {"class_type": "Nope", "inputs": {}},
    }
    result = validate_prompt(prompt, REGISTRY)
    types = {node: sorted(i["type"] for i in entry["errors"]) for node, entry in result.node_errors.items()}
    assert types["1"] == ["value_bigger_than_max", "value_not_in_list"]
    assert types["2"] == ["return_type_mismatch"]
    assert "dependency_cycle" in types["3"] and "exception_during_validation" in types["3"]
    assert "dependency_cycle" in types["4"]
    assert types["5"] == ["missing_node_type"]
    assert result.error.type == "missing_node_type"
    assert result.node_errors["1"]["dependent_outputs"] == ["2"]


def test_prompt_without_outputs_and_wrong_top_level() -> None:
    assert validate_prompt({"1": {"class_type": "Number", "inputs": {"value": 1, "mode": "a"}}}, REGISTRY).error.type == "prompt_no_outputs"
    assert validate_prompt(["not", "a", "dict"], REGISTRY).error.type == "invalid_prompt"


def test_oversized_string_is_refused() -> None:
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 1, "mode": "a", "text": "x" * 101}},
              "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}}
    result = validate_prompt(prompt, REGISTRY, max_string_length=100)
    assert result.node_errors["1"]["errors"][0]["type"] == "value_too_long"
