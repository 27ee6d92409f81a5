"""UI-format (editor-saved) workflows convert to the API prompt the official frontend would queue."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from partyflow.graph.errors import WorkflowFormatError
from partyflow.graph.ui_format import is_ui_workflow, ui_to_api

DATA = Path(__file__).resolve().parents[1] / "data" / "ui_workflows"

SAMPLERS = ["euler", "ddim"]
SCHEDULERS = ["normal", "karras", "simple"]


def _info(display: str, required: dict[str, Any], optional: dict[str, Any] | None = None, *, order=None):
    optional = optional or {}
    return {
        "input": {"required": required, "optional": optional, "hidden": {"unique_id": "UNIQUE_ID"}},
        "input_order": order or {"required": list(required), "optional": list(optional)},
        "output": [],
        "output_is_list": [],
        "output_name": [],
        "name": display.replace(" ", ""),
        "display_name": display,
        "category": "test",
        "output_node": False,
    }


OBJECT_INFO: dict[str, Any] = {
    "Loader": _info("Load Checkpoint", {"ckpt_name": [["a.ckpt", "b.ckpt"], {}]}),
    "Encode": _info("Encode Text", {"clip": ["CLIP", {}], "text": ["STRING", {"multiline": True}]}),
    # The input dict is deliberately out of order: input_order decides how widgets_values line up.
    "Sampler": _info(
        "Sampler",
        {
            "scheduler": ["COMBO", {"options": SCHEDULERS}],
            "positive": ["CONDITIONING", {}],
            "cfg": ["FLOAT", {"default": 8.0}],
            "model": ["MODEL", {}],
            "steps": ["INT", {"default": 20}],
            "sampler_name": [SAMPLERS, {}],
            "seed": ["INT", {"default": 0, "control_after_generate": True}],
        },
        {"denoise": ["FLOAT", {"default": 1.0}]},
        order={
            "required": ["model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive"],
            "optional": ["denoise"],
        },
    ),
    "Concat": _info(
        "Concat",
        {"a": ["STRING", {"forceInput": True}], "b": ["STRING", {"forceInput": True}], "sep": ["STRING", {}]},
    ),
    "Lora": _info("Lora", {"model": ["MODEL", {}], "clip": ["CLIP", {}], "strength": ["FLOAT", {}]}),
    "Swap": _info("Swap", {"clip": ["CLIP", {}], "model": ["MODEL", {}]}),
    "LegacySeed": _info("Legacy Seed", {"noise_seed": ["INT", {}], "text": ["STRING", {}]}),
    "Scale": _info("Scale", {"count": ["INT", {}], "factor": ["FLOAT", {}]}),
    "VideoCombine": _info(
        "Video Combine", {"images": ["IMAGE", {}], "frame_rate": ["INT", {}], "format": [["gif", "mp4"], {}]}
    ),
    "Tags": _info("Tags", {"tags": ["COMBO", {"options": ["a", "b", "c"], "multi_select": True}]}),
}


def _load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def _sampler(seed, steps, cfg, sampler_name, scheduler, **extra) -> dict[str, Any]:
    return {
        "seed": seed,
        "steps": steps,
        "cfg": cfg,
        "sampler_name": sampler_name,
        "scheduler": scheduler,
        **extra,
    }


def _entry(class_type: str, inputs: dict[str, Any], title: str | None = None) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs, "_meta": {"title": title or class_type}}


def _node(node_id, node_type, widgets=None, inputs=(), outputs=(), mode=0, **extra) -> dict[str, Any]:
    """A UI node; `inputs`/`outputs` are (name, type[, link]) tuples."""
    return {
        "id": node_id,
        "type": node_type,
        "mode": mode,
        "inputs": [{"name": i[0], "type": i[1], "link": i[2] if len(i) > 2 else None} for i in inputs],
        "outputs": [{"name": o[0], "type": o[1], "links": []} for o in outputs],
        "widgets_values": widgets if widgets is not None else [],
        **extra,
    }


def _doc(nodes, links=(), **extra) -> dict[str, Any]:
    return {"nodes": list(nodes), "links": [list(link) for link in links], "version": 0.4, **extra}


# --- is_ui_workflow ---------------------------------------------------------------------------------------------


def test_is_ui_workflow_tells_editor_files_from_api_prompts() -> None:
    assert is_ui_workflow(_load("basic.json"))
    assert not is_ui_workflow({"1": {"class_type": "Loader", "inputs": {"ckpt_name": "a.ckpt"}}})
    assert not is_ui_workflow({"nodes": [], "links": {}})
    assert not is_ui_workflow({"nodes": {}, "links": []})
    assert not is_ui_workflow([{"nodes": [], "links": []}])
    assert not is_ui_workflow(None)


# --- widgets, links, titles -------------------------------------------------------------------------------------


def test_basic_workflow_converts_to_the_exact_api_prompt() -> None:
    assert ui_to_api(_load("basic.json"), OBJECT_INFO) == {
        "1": _entry("Loader", {"ckpt_name": "b.ckpt"}, "Load Checkpoint"),
        # text is both a widget and linked: the link wins. The Note (4) is dropped.
        "2": _entry("Encode", {"clip": ["1", 1], "text": ["6", 0]}, "Positive"),
        # widgets_values follow input_order; "randomize" after the seed is not an input.
        "3": _entry(
            "Sampler",
            {**_sampler(42, 20, 7.5, "ddim", "karras", denoise=0.8), "model": ["1", 0], "positive": ["2", 0]},
        ),
        # A class missing from object_info keeps its linked inputs only, so validation can report it.
        "5": _entry("SomePackNode", {"x": ["1", 0]}),
        # forceInput inputs take no widget value: the only value belongs to "sep".
        "6": _entry("Concat", {"sep": " | "}),
    }


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([42, "fixed", 20, 7.5, "ddim", "karras", 0.8], _sampler(42, 20, 7.5, "ddim", "karras", denoise=0.8)),
        # Files saved without the control value still line up.
        ([42, 20, 7.5, "ddim", "karras", 0.8], _sampler(42, 20, 7.5, "ddim", "karras", denoise=0.8)),
        # Fewer values than widgets (widgets added after the file was saved): the rest take their defaults,
        # as the editor gives them on load.
        ([5, "decrement", 3], _sampler(5, 3, 8.0, "euler", "normal", denoise=1.0)),
    ],
)
def test_control_after_generate_value_is_skipped_only_when_present(values, expected) -> None:
    doc = _doc([_node(1, "Sampler", values, inputs=[("model", "MODEL"), ("positive", "CONDITIONING")])])
    assert ui_to_api(doc, OBJECT_INFO)["1"]["inputs"] == expected


def test_legacy_seed_names_and_unflagged_ints_also_carry_a_control_value() -> None:
    doc = _doc([_node(1, "LegacySeed", [5, "increment", "hello"]), _node(2, "Scale", [3, "randomize", 0.5])])
    result = ui_to_api(doc, OBJECT_INFO)
    assert result["1"]["inputs"] == {"noise_seed": 5, "text": "hello"}
    assert result["2"]["inputs"] == {"count": 3, "factor": 0.5}


def test_dict_widgets_values_are_matched_by_name() -> None:
    values = {"frame_rate": 8, "format": "mp4", "videopreview": {"hidden": False}}
    doc = _doc([_node(1, "VideoCombine", values, inputs=[("images", "IMAGE")])])
    assert ui_to_api(doc, OBJECT_INFO)["1"]["inputs"] == {"frame_rate": 8, "format": "mp4"}


def test_list_widget_values_are_wrapped_so_they_do_not_read_as_links() -> None:
    doc = _doc([_node(1, "Tags", [["a", "c"]])])
    assert ui_to_api(doc, OBJECT_INFO)["1"]["inputs"] == {"tags": {"__value__": ["a", "c"]}}


# --- editor-only nodes ------------------------------------------------------------------------------------------


def test_primitive_values_and_reroute_chains_are_resolved_through() -> None:
    assert ui_to_api(_load("primitive_reroute.json"), OBJECT_INFO) == {
        "13": _entry("Loader", {"ckpt_name": "a.ckpt"}, "Load Checkpoint"),
        # seed comes from the PrimitiveNode; model through two Reroutes; positive from an unfed Reroute is unset.
        "14": _entry(
            "Sampler", {**_sampler(123, 10, 1.0, "euler", "normal", denoise=1.0), "model": ["13", 0]}
        ),
        # the PrimitiveNode's value also reaches a target behind a Reroute; denoise (not saved) takes its default.
        "16": _entry("Sampler", {**_sampler(123, 30, 2.0, "ddim", "simple", denoise=1.0), "model": ["13", 0]}),
    }


def test_muted_and_bypassed_nodes() -> None:
    clip = ["1", 1]
    model = ["1", 0]
    assert ui_to_api(_load("mute_bypass.json"), OBJECT_INFO) == {
        "1": _entry("Loader", {"ckpt_name": "a.ckpt"}, "Load Checkpoint"),
        # through a chain of two bypassed Loras, each consumer gets the input of its type
        "4": _entry("Encode", {"text": "x", "clip": clip}, "Encode Text"),
        "5": _entry(
            "Sampler",
            {**_sampler(1, 5, 1.0, "euler", "normal", denoise=1.0), "model": model, "positive": ["4", 0]},
        ),
        # the muted Encode (6) is dropped and the input it fed is left unset
        "7": _entry("Sampler", {**_sampler(2, 5, 1.0, "euler", "normal", denoise=1.0), "model": model}),
        # Swap's slot types are crossed: the first input of the wanted type is used; a bypassed node without an
        # input of the wanted type (11) leaves the input unset
        "9": _entry("Sampler", {**_sampler(3, 5, 1.0, "euler", "normal", denoise=1.0), "model": model}),
        "10": _entry("Encode", {"text": "y", "clip": clip}, "Encode Text"),
        # a "*" consumer takes the bypassed node's input at the same slot index
        "12": _entry("AnyShow", {"value": clip}),
    }


def test_bypass_prefers_the_input_at_the_same_slot_index() -> None:
    pair = [("a", "STRING", 1), ("b", "STRING", 2)]
    doc = _doc(
        [
            _node(1, "Concat", ["first"], outputs=[("STRING", "STRING")]),
            _node(2, "Concat", ["second"], outputs=[("STRING", "STRING")]),
            _node(3, "Pair", inputs=pair, outputs=[("a", "STRING"), ("b", "STRING")], mode=4),
            _node(4, "Encode", ["t"], inputs=[("text", "STRING", 3)]),
        ],
        [(1, 1, 0, 3, 0, "STRING"), (2, 2, 0, 3, 1, "STRING"), (3, 3, 1, 4, 0, "STRING")],
    )
    assert ui_to_api(doc, OBJECT_INFO)["4"]["inputs"] == {"text": ["2", 0]}


def test_muted_source_leaves_a_widget_input_unset_rather_than_falling_back() -> None:
    doc = _doc(
        [
            _node(1, "Concat", ["x"], outputs=[("STRING", "STRING")], mode=2),
            _node(2, "Encode", ["kept?"], inputs=[("text", "STRING", 1)]),
        ],
        [(1, 1, 0, 2, 0, "STRING")],
    )
    assert ui_to_api(doc, OBJECT_INFO) == {"2": _entry("Encode", {}, "Encode Text")}


# --- subgraphs --------------------------------------------------------------------------------------------------


def test_subgraph_instances_are_flattened_with_path_ids() -> None:
    assert ui_to_api(_load("subgraph.json"), OBJECT_INFO) == {
        "1": _entry("Loader", {"ckpt_name": "a.ckpt"}, "Load Checkpoint"),
        # the unlinked "text" input of instance 2 takes the instance's own (promoted) widget value
        "2:5": _entry("Encode", {"clip": ["1", 1], "text": "a red fox"}, "Encode Text"),
        # nested instance 6 inside instance 2; its input passes through two subgraph boundaries
        "2:6:3": _entry("Lora", {"strength": 0.75, "model": ["1", 0]}),
        "3": _entry(
            "Sampler",
            {
                **_sampler(9, 12, 3.0, "euler", "normal", denoise=1.0),
                "model": ["2:6:3", 0],
                "positive": ["2:5", 0],
            },
        ),
        # a second instance: its text is linked outside; its model input is not connected at all
        "4:5": _entry("Encode", {"clip": ["1", 1], "text": ["8", 0]}, "Encode Text"),
        "4:6:3": _entry("Lora", {"strength": 0.75}),
        "8": _entry("Concat", {"sep": "+"}),
    }


def test_bypassed_subgraph_instance_is_not_expanded_and_passes_its_inputs() -> None:
    doc = _load("subgraph.json")
    doc["nodes"][1]["mode"] = 4
    result = ui_to_api(doc, OBJECT_INFO)
    assert not any(node_id.startswith("2:") for node_id in result)
    # model_out (MODEL) takes the instance's MODEL input; conditioning has no CONDITIONING input to take
    assert result["3"]["inputs"]["model"] == ["1", 0]
    assert "positive" not in result["3"]["inputs"]


def test_muted_subgraph_instance_is_dropped_with_its_inner_nodes() -> None:
    doc = _load("subgraph.json")
    doc["nodes"][1]["mode"] = 2
    result = ui_to_api(doc, OBJECT_INFO)
    assert sorted(result) == ["1", "3", "4:5", "4:6:3", "8"]
    assert "model" not in result["3"]["inputs"] and "positive" not in result["3"]["inputs"]


def test_conversion_is_deterministic_and_leaves_the_input_untouched() -> None:
    doc = _load("subgraph.json")
    before = copy.deepcopy(doc)
    first, second = ui_to_api(doc, OBJECT_INFO), ui_to_api(doc, OBJECT_INFO)
    assert json.dumps(first) == json.dumps(second)
    assert list(first) == ["1", "2:5", "2:6:3", "3", "4:5", "4:6:3", "8"]
    assert doc == before


# --- malformed documents ----------------------------------------------------------------------------------------


def _error(doc: object) -> WorkflowFormatError:
    with pytest.raises(WorkflowFormatError) as caught:
        ui_to_api(doc, OBJECT_INFO)  # type: ignore[arg-type]
    return caught.value


def test_input_pointing_at_a_missing_link_names_node_and_link() -> None:
    error = _error(_doc([_node(3, "Encode", ["t"], inputs=[("clip", "CLIP", 99)])]))
    assert error.where == "node 3"
    assert "99" in error.message and error.hint


def test_link_from_a_missing_node_names_the_link() -> None:
    error = _error(
        _doc([_node(3, "Encode", ["t"], inputs=[("clip", "CLIP", 7)])], [(7, 42, 0, 3, 0, "CLIP")])
    )
    assert error.where == "link 7"
    assert "42" in error.message


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"nodes": [{"id": 1}], "links": []}, "node 1"),
        ({"nodes": [{"type": "Encode"}], "links": []}, "nodes[0]"),
        ({"nodes": [_node(1, "Encode", mode="always")], "links": []}, "node 1"),
        ({"nodes": [], "links": [[1, 2, 0]]}, "links[0]"),
        ({"nodes": [], "links": [[1, 2, -1, 3, 0, "X"]]}, "link 1"),
        ({"nodes": "oops", "links": []}, "nodes"),
        ({"nodes": [_node(1, "Encode"), _node(1, "Loader")], "links": []}, "node 1"),
    ],
)
def test_malformed_documents_say_where(doc, where) -> None:
    assert _error(doc).where == where


def test_non_object_document_is_rejected() -> None:
    assert "JSON object" in _error(["not", "a", "workflow"]).message


def test_reroute_loop_is_reported_not_followed_forever() -> None:
    doc = _doc(
        [
            _node(1, "Reroute", inputs=[("", "*", 2)], outputs=[("", "*")]),
            _node(2, "Reroute", inputs=[("", "*", 1)], outputs=[("", "*")]),
            _node(3, "Encode", ["t"], inputs=[("clip", "CLIP", 3)]),
        ],
        [(1, 1, 0, 2, 0, "*"), (2, 2, 0, 1, 0, "*"), (3, 1, 0, 3, 0, "CLIP")],
    )
    error = _error(doc)
    assert error.where == "node 3" and "loop" in error.message


def test_subgraph_containing_itself_is_reported() -> None:
    definition = {
        "id": "sg",
        "inputs": [],
        "outputs": [],
        "nodes": [_node(1, "sg")],
        "links": [],
    }
    doc = _doc([_node(5, "sg")], definitions={"subgraphs": [definition]})
    assert "itself" in _error(doc).message


def test_long_reroute_chain_does_not_exhaust_the_stack() -> None:
    count = 3000
    nodes = [_node(1, "Loader", ["a.ckpt"], outputs=[("MODEL", "MODEL"), ("CLIP", "CLIP")])]
    links = [(1, 1, 1, 2, 0, "CLIP")]
    for node_id in range(2, count):
        nodes.append(_node(node_id, "Reroute", inputs=[("", "*", node_id - 1)], outputs=[("", "*")]))
        links.append((node_id, node_id, 0, node_id + 1, 0, "*"))
    nodes.append(_node(count, "Encode", ["t"], inputs=[("clip", "CLIP", count - 1)]))
    assert ui_to_api(_doc(nodes, links), OBJECT_INFO)[str(count)]["inputs"]["clip"] == ["1", 1]


# --- property: malformed input never escapes as KeyError/TypeError/IndexError ------------------------------------

_ids = st.one_of(st.integers(-20, 8), st.sampled_from(["1", "2", "sg", "", "-10"]), st.none(), st.booleans())
_types = st.sampled_from([*OBJECT_INFO, "Reroute", "PrimitiveNode", "Note", "Unknown", "sg", "sg2", ""])
_slot_types = st.one_of(
    st.sampled_from(["MODEL", "CLIP", "*", "", "STRING", "INT", "a,b"]), st.none(), st.integers()
)
_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 5), st.floats(allow_nan=False), st.text(max_size=4)
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
_slot = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["model", "clip", "text", "seed", ""]), _json_leaf)},
    optional={"type": _slot_types, "link": _ids, "widget": st.one_of(st.none(), st.just({"name": "text"}))},
)
_node_doc = st.fixed_dictionaries(
    {"id": _ids, "type": st.one_of(_types, _json_leaf)},
    optional={
        "mode": st.one_of(st.sampled_from([0, 2, 4]), _json_leaf),
        "inputs": st.one_of(st.lists(st.one_of(_slot, _json_leaf), max_size=4), _json_leaf),
        "outputs": st.one_of(st.lists(st.one_of(_slot, _json_leaf), max_size=3), _json_leaf),
        "widgets_values": _json,
        "title": _json_leaf,
    },
)
_array_link = st.lists(st.one_of(_ids, st.integers(-1, 4), _json_leaf), min_size=0, max_size=7)
_object_link = st.fixed_dictionaries(
    {},
    optional={
        k: st.one_of(_ids, st.integers(-1, 4))
        for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot")
    },
)
_links = st.one_of(st.lists(st.one_of(_array_link, _object_link, _json_leaf), max_size=6), _json_leaf)
_io = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"name": st.text(max_size=3)},
            optional={"linkIds": st.one_of(st.lists(_ids, max_size=2), _json_leaf)},
        ),
        _json_leaf,
    ),
    max_size=3,
)
_subgraph = st.fixed_dictionaries(
    {"id": st.one_of(st.sampled_from(["sg", "sg2"]), _json_leaf)},
    optional={"nodes": st.lists(_node_doc, max_size=4), "links": _links, "inputs": _io, "outputs": _io},
)
_ui_doc = st.fixed_dictionaries(
    {"nodes": st.one_of(st.lists(_node_doc, max_size=6), _json_leaf), "links": _links},
    optional={
        "definitions": st.one_of(st.fixed_dictionaries({"subgraphs": st.lists(_subgraph, max_size=2)}), _json)
    },
)


# Mostly well-formed documents, so the random search also reaches link resolution, bypass and subgraphs.
_small_ids = st.integers(1, 6)
_good_slot = st.builds(
    lambda name, slot_type, link, widget: {"name": name, "type": slot_type, "link": link, **widget},
    st.sampled_from(["model", "clip", "text", "seed", "a"]),
    st.sampled_from(["MODEL", "CLIP", "STRING", "INT", "*", "CONDITIONING"]),
    st.one_of(st.none(), st.integers(1, 8)),
    st.sampled_from([{}, {"widget": {"name": "text"}}]),
)
_good_node = st.fixed_dictionaries(
    {
        "id": _small_ids,
        "type": _types,
        "mode": st.sampled_from([0, 0, 2, 4]),
        "inputs": st.lists(_good_slot, max_size=3),
        "outputs": st.lists(st.fixed_dictionaries({"name": st.just("o"), "type": _slot_types}), max_size=3),
        "widgets_values": st.one_of(
            st.lists(_json_leaf, max_size=8), st.dictionaries(st.text(max_size=5), _json_leaf)
        ),
    }
)
_good_link = st.tuples(
    st.integers(1, 8),
    st.sampled_from([1, 2, 3, 4, 5, 6, -10, -20]),
    st.integers(0, 3),
    st.sampled_from([1, 2, 3, 4, 5, 6, -20]),
    st.integers(0, 3),
    _slot_types,
).map(list)
_good_object_link = _good_link.map(
    lambda v: dict(
        zip(("id", "origin_id", "origin_slot", "target_id", "target_slot", "type"), v, strict=True)
    )
)
_good_io = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["model", "clip", "text"]),
            "linkIds": st.lists(st.integers(1, 8), max_size=2),
        }
    ),
    max_size=3,
)
_good_subgraph = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["sg", "sg2"]),
        "nodes": st.lists(_good_node, max_size=4, unique_by=lambda n: n["id"]),
        "links": st.lists(_good_object_link, max_size=6),
        "inputs": _good_io,
        "outputs": _good_io,
    }
)
_good_doc = st.fixed_dictionaries(
    {
        "nodes": st.lists(_good_node, max_size=6, unique_by=lambda n: n["id"]),
        "links": st.lists(_good_link, max_size=8),
        "definitions": st.fixed_dictionaries({"subgraphs": st.lists(_good_subgraph, max_size=2)}),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.one_of(_good_doc, _ui_doc, _json))
def test_random_malformed_documents_either_convert_or_raise_workflow_format_error(doc) -> None:
    try:
        result = ui_to_api(doc, OBJECT_INFO)
    except WorkflowFormatError as error:
        assert str(error)
    else:
        assert isinstance(result, dict)
        json.dumps(result)


# --- saved-format versions (issue 20) ---------------------------------------------------------------------------

PARTY_INFO = {
    "LLM": _info(
        "LLM",
        {
            "model": ["CUSTOM", {}],
            "system_prompt": ["STRING", {"multiline": True, "default": "You are helpful."}],
            "user_prompt": ["STRING", {"multiline": True, "default": "Hello"}],
            "temperature": ["FLOAT", {"default": 0.7}],
            "is_memory": [["enable", "disable"], {"default": "enable"}],
            "conversation_rounds": ["INT", {"default": 100}],
        },
        {
            "tools": ["STRING", {"forceInput": True}],
            "file_content": ["STRING", {"forceInput": True}],
            "is_enable": ["BOOLEAN", {"default": True}],
        },
        order={"required": ["model", "system_prompt", "user_prompt", "temperature", "is_memory",
                            "conversation_rounds"],
               "optional": ["tools", "file_content", "is_enable"]},
    ),
}


def test_force_input_sockets_saved_as_converted_widgets_keep_their_slot() -> None:
    # an older editor made widgets for forceInput inputs and saved them converted (a `widget` marker): their
    # values sit in widgets_values and must not shift the ones after them
    node = _node(1, "LLM", ["sys", "hi", 0.5, "disable", 7, "", "", True],
                 inputs=[("model", "CUSTOM"), ("tools", "STRING"), ("file_content", "STRING")])
    for entry in node["inputs"]:
        if entry["name"] in ("tools", "file_content"):
            entry["widget"] = {"name": entry["name"]}
    result = ui_to_api(_doc([node]), PARTY_INFO)["1"]["inputs"]
    assert result["conversation_rounds"] == 7 and result["is_enable"] is True
    assert "tools" not in result and "file_content" not in result  # slots skipped; unlinked sockets send nothing


def test_force_input_sockets_of_newer_editors_hold_no_slot() -> None:
    node = _node(1, "LLM", ["sys", "hi", 0.5, "disable", 7, False],
                 inputs=[("model", "CUSTOM"), ("tools", "STRING"), ("file_content", "STRING")])
    result = ui_to_api(_doc([node]), PARTY_INFO)["1"]["inputs"]
    assert result["conversation_rounds"] == 7 and result["is_enable"] is False
    assert "tools" not in result and "file_content" not in result


def test_widgets_added_after_saving_take_their_defaults() -> None:
    node = _node(1, "LLM", ["sys", "hi", 0.5, "disable"], inputs=[("model", "CUSTOM")])
    result = ui_to_api(_doc([node]), PARTY_INFO)["1"]["inputs"]
    assert result["conversation_rounds"] == 100 and result["is_enable"] is True


def test_older_saves_that_do_not_list_every_converted_input_still_line_up() -> None:
    # saved by an editor that made widgets of all forceInput inputs, but only `tools` is listed as converted;
    # `file_content` still holds its slot, which the value types reveal
    node = _node(1, "LLM", ["sys", "hi", 0.5, "disable", 7, "", "", True],
                 inputs=[("model", "CUSTOM"), ("tools", "STRING")])
    node["inputs"][1]["widget"] = {"name": "tools"}
    node["widgets_values"] = ["sys", "hi", 0.5, "disable", 7, "", "", True]
    result = ui_to_api(_doc([node]), PARTY_INFO)["1"]["inputs"]
    assert result["conversation_rounds"] == 7 and result["is_enable"] is True


def test_list_values_a_pack_widget_saved_after_a_boolean_do_not_become_its_value() -> None:
    node = _node(1, "LLM", ["sys", "hi", 0.5, "disable", 7, False, [False, True]], inputs=[("model", "CUSTOM")])
    result = ui_to_api(_doc([node]), PARTY_INFO)["1"]["inputs"]
    assert result["is_enable"] is False
