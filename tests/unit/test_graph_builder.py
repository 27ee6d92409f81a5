"""GraphBuilder: ComfyUI's expansion-graph semantics, with prefixes drawn from the running node call."""

from __future__ import annotations

import threading

import pytest

from partyflow.nodes.graph_builder import GraphBuilder, add_graph_prefix
from partyflow.nodes.host import NodeScope, node_scope


def scope(node_id: str = "5", call_index: int = 0) -> NodeScope:
    return NodeScope(prompt_id="p1", node_id=node_id, report_progress=lambda *a: None,
                     interrupt=threading.Event(), call_index=call_index)


def test_prefix_comes_from_the_node_call_and_counts_graphs() -> None:
    with node_scope(scope("12", call_index=3)):
        first, second = GraphBuilder(), GraphBuilder()
    assert first.prefix == "12.3.0."
    assert second.prefix == "12.3.1."


def test_explicit_prefix_wins_and_does_not_use_up_a_graph_index() -> None:
    with node_scope(scope("7")):
        explicit = GraphBuilder(prefix="mine.")
        allocated = GraphBuilder()
    assert explicit.prefix == "mine."
    assert allocated.prefix == "7.0.0."


def test_alloc_prefix_arguments_override_the_scope() -> None:
    with node_scope(scope("7", call_index=1)):
        assert GraphBuilder.alloc_prefix(root="r") == "r.1.0."
        assert GraphBuilder.alloc_prefix(call_index=4, graph_index=9) == "7.4.9."
        assert GraphBuilder.alloc_prefix() == "7.1.2."  # every allocation advanced the counter


def test_each_node_call_has_its_own_counter() -> None:
    a, b = scope("1"), scope("1")
    with node_scope(a):
        assert GraphBuilder().prefix == "1.0.0."
    with node_scope(b):
        assert GraphBuilder().prefix == "1.0.0."
    with node_scope(a):
        assert GraphBuilder().prefix == "1.0.1."


def test_outside_a_node_call_the_prefix_is_rootless() -> None:
    assert GraphBuilder().prefix == ".0.0."


def test_nodes_get_prefixed_ids_and_links() -> None:
    graph = GraphBuilder(prefix="9.0.0.")
    text = graph.node("Text", value="hi")
    shout = graph.node("Upper", "shout", text=text.out(0))
    assert (text.id, shout.id) == ("9.0.0.1", "9.0.0.shout")
    assert graph.node("Text").id == "9.0.0.2"
    assert graph.finalize() == {
        "9.0.0.1": {"class_type": "Text", "inputs": {"value": "hi"}},
        "9.0.0.shout": {"class_type": "Upper", "inputs": {"text": ["9.0.0.1", 0]}},
        "9.0.0.2": {"class_type": "Text", "inputs": {}},
    }


def test_adding_an_existing_id_returns_that_node_unchanged() -> None:
    graph = GraphBuilder(prefix="p.")
    original = graph.node("A", "x", value=1)
    again = graph.node("B", "x", value=2)
    assert again is original
    assert graph.finalize() == {"p.x": {"class_type": "A", "inputs": {"value": 1}}}


def test_node_inputs_and_display_override() -> None:
    graph = GraphBuilder(prefix="p.")
    node = graph.node("A", a=1, b=2)
    node.set_input("a", None)
    node.set_input("c", 3)
    node.set_input("missing", None)
    node.set_override_display_id("4")
    assert node.get_input("c") == 3
    assert node.get_input("a") is None
    assert graph.finalize()["p.1"] == {"class_type": "A", "inputs": {"b": 2, "c": 3}, "override_display_id": "4"}
    assert graph.lookup_node("1") is node
    assert graph.lookup_node("nope") is None


def test_finalize_is_a_snapshot() -> None:
    graph = GraphBuilder(prefix="p.")
    node = graph.node("A", a=1)
    final = graph.finalize()
    node.set_input("a", 2)
    assert final["p.1"]["inputs"] == {"a": 1}


def test_replace_node_output_relinks_or_disconnects() -> None:
    graph = GraphBuilder(prefix="p.")
    source = graph.node("Src")
    keep = graph.node("Use", x=source.out(0), y=source.out(1))
    graph.replace_node_output("1", 0, ["other", 2])
    assert keep.inputs == {"x": ["other", 2], "y": ["p.1", 1]}
    graph.replace_node_output("1", 1, None)
    assert keep.inputs == {"x": ["other", 2]}


def test_remove_node() -> None:
    graph = GraphBuilder(prefix="p.")
    graph.node("A")
    graph.remove_node("1")
    assert graph.finalize() == {}
    with pytest.raises(KeyError):
        graph.remove_node("1")


def test_add_graph_prefix_renames_nodes_inner_links_and_outputs() -> None:
    graph = {
        "1": {"class_type": "A", "inputs": {"n": 3, "pair": ["x", "y"]}},
        "2": {"class_type": "B", "inputs": {"a": ["1", 0]}, "_meta": {"title": "b"}},
    }
    new_graph, outputs = add_graph_prefix(graph, [["2", 0], 42], "pre.")
    assert new_graph == {
        "pre.1": {"class_type": "A", "inputs": {"n": 3, "pair": ["x", "y"]}},
        "pre.2": {"class_type": "B", "inputs": {"a": ["pre.1", 0]}, "_meta": {"title": "b"}},
    }
    assert outputs == (["pre.2", 0], 42)
    assert graph["2"]["inputs"] == {"a": ["1", 0]}  # the original is untouched


def test_counter_survives_many_expansions() -> None:
    counting = scope("loop")
    counting._graphs_made = 100
    with node_scope(counting):
        assert GraphBuilder().prefix == "loop.0.100."
