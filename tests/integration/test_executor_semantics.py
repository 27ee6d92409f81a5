"""ComfyUI's execution semantics, run through the real engine with a third-party-style pack."""

from __future__ import annotations

import json

import pytest

from partyflow import Engine, PromptValidationError
from partyflow.engine.events import (
    CustomMessage,
    Event,
    Executed,
    Executing,
    ExecutionCached,
    ExecutionStart,
    ExecutionSuccess,
    Progress,
)


def node(class_type: str, **inputs):
    return {"class_type": class_type, "inputs": inputs}


def chain_prompt(start: int = 1) -> dict:
    return {"1": node("Const", value=start), "2": node("AddOne", value=["1", 0]),
            "3": node("AddOne", value=["2", 0]), "4": node("Collect", value=["3", 0])}


def test_chain_runs_and_returns_ui_and_raw_outputs(semantics):
    engine, _ = semantics
    result = engine.run(chain_prompt(1))
    assert result.status == "success"
    assert result.outputs == {"4": {"value": [3]}}
    assert result.output("3") == 3
    assert set(result.executed) == {"1", "2", "3", "4"}
    assert set(result.timings) == {"1", "2", "3", "4"}


def test_rerun_is_fully_cached_and_a_change_reruns_only_descendants(semantics):
    engine, pack = semantics
    prompt = {"1": node("Const", value=1), "2": node("AddOne", value=["1", 0]), "3": node("Collect", value=["2", 0]),
              "10": node("Const", value=5), "11": node("AddOne", value=["10", 0]), "12": node("Collect", value=["11", 0])}
    engine.run(prompt)
    second = engine.run(prompt)
    assert second.executed == []
    assert sorted(second.cached) == ["12", "3"]  # cached outputs stop the walk: their ancestors are not visited
    assert second.outputs == {"3": {"value": [2]}, "12": {"value": [6]}}
    prompt["10"]["inputs"]["value"] = 7
    third = engine.run(prompt)
    assert sorted(third.executed) == ["10", "11", "12"]
    assert third.outputs["12"] == {"value": [8]}


@pytest.mark.parametrize("strategy, reruns", [("none", 4), ("classic", 0), ("lru:100", 0)])
def test_cache_strategies(tmp_path, strategy, reruns):
    from tests.conftest import install_pack
    install_pack(tmp_path, "semantics")
    engine = Engine(home=tmp_path, builtin_packs=(), cache=strategy)
    engine.run(chain_prompt())
    assert len(engine.run(chain_prompt()).executed) == reruns
    engine.close()


def test_lru_keeps_older_prompts_that_classic_forgets(tmp_path):
    from tests.conftest import install_pack
    install_pack(tmp_path, "semantics")
    for strategy, expected in (("classic", 4), ("lru:50", 0)):
        engine = Engine(home=tmp_path, builtin_packs=(), cache=strategy)
        engine.run(chain_prompt(1))
        engine.run(chain_prompt(2))
        assert len(engine.run(chain_prompt(1)).executed) == expected, strategy
        engine.close()


def test_lazy_switch_evaluates_only_the_chosen_branch(semantics):
    engine, pack = semantics
    prompt = {"1": node("Const", value=10), "2": node("Const", value=20), "3": node("AddOne", value=["2", 0]),
              "4": node("LazySwitch", condition=True, on_true=["1", 0], on_false=["3", 0]),
              "5": node("Collect", value=["4", 0])}
    result = engine.run(prompt)
    assert result.outputs["5"] == {"value": [10]}
    assert "3" not in result.executed and "2" not in result.executed
    prompt["4"]["inputs"]["condition"] = False
    result = engine.run(prompt)
    assert result.outputs["5"] == {"value": [21]}
    assert {"2", "3"} <= set(result.executed)


def test_output_list_maps_downstream_and_input_is_list_gathers(semantics):
    engine, pack = semantics
    prompt = {"1": node("MakeList", count=4), "2": node("AddOne", value=["1", 0]),
              "3": node("SumList", values=["2", 0]), "4": node("Collect", value=["3", 0]),
              "5": node("Collect", value=["2", 0])}
    result = engine.run(prompt)
    assert result.outputs["4"] == {"value": [10]}          # 1+2+3+4
    assert result.outputs["5"] == {"value": [1, 2, 3, 4]}  # ui of the four mapped calls merged
    assert pack.CALLS.count("AddOne") == 4


def test_shorter_list_repeats_its_last_item(semantics):
    engine, _ = semantics
    prompt = {"1": node("MakeList", count=3), "2": node("MakeList", count=2),
              "3": node("Pair", a=["1", 0], b=["2", 0]), "4": node("Collect", value=["3", 0])}
    assert engine.run(prompt).outputs["4"] == {"value": [0, 101, 201]}


def test_empty_list_runs_nothing_downstream(semantics):
    engine, pack = semantics
    prompt = {"1": node("MakeList", count=0), "2": node("AddOne", value=["1", 0]), "3": node("SumList", values=["2", 0]),
              "4": node("Collect", value=["3", 0])}
    assert engine.run(prompt).outputs["4"] == {"value": [0]}
    assert "AddOne" not in pack.CALLS


def test_loop_by_expansion(semantics):
    engine, pack = semantics
    result = engine.run({"1": node("CountDown", n=5, total=0), "2": node("Collect", value=["1", 0])})
    assert result.outputs["2"] == {"value": [15]}
    assert pack.CALLS.count("CountDown") == 6
    expanded = [n for n in result.executed if n.startswith("1.")]
    assert len(expanded) == 5 and all(n.startswith("1.0.0.") for n in expanded[:1])
    again = engine.run({"1": node("CountDown", n=5, total=0), "2": node("Collect", value=["1", 0])})
    assert again.executed == []


def test_execution_blocker_without_message_skips_downstream(semantics):
    engine, pack = semantics
    prompt = {"1": node("Const", value=1), "2": node("Block", value=["1", 0], message=""),
              "3": node("Collect", value=["2", 0]), "4": node("Collect", value=["1", 0])}
    result = engine.run(prompt)
    assert result.status == "success"
    assert "3" not in result.outputs and result.outputs["4"] == {"value": [1]}


def test_execution_blocker_with_message_fails_the_consumer(semantics):
    engine, _ = semantics
    prompt = {"1": node("Const", value=1), "2": node("Block", value=["1", 0], message="no input selected"),
              "3": node("Collect", value=["2", 0])}
    result = engine.run(prompt)
    assert result.status == "error"
    assert result.error.node_id == "3" and result.error.message == "no input selected"


def test_is_changed_controls_reexecution(semantics, monkeypatch):
    engine, pack = semantics
    prompt = {"1": node("Changed", token="a"), "2": node("Collect", value=["1", 0])}
    engine.run(prompt)
    engine.run(prompt)
    assert pack.CALLS.count("Changed") == 1
    monkeypatch.setenv("SEMANTICS_TOKEN", "b")  # IS_CHANGED now returns something new
    engine.run(prompt)
    assert pack.CALLS.count("Changed") == 2
    prompt["1"]["inputs"]["token"] = "always"  # NaN: never equal, always re-executes
    engine.run(prompt)
    engine.run(prompt)
    assert pack.CALLS.count("Changed") == 4


def test_validate_inputs_replaces_range_checks_for_its_parameters(semantics):
    engine, _ = semantics
    ok = engine.run({"1": node("Validated", value=500), "2": node("Collect", value=["1", 0])})
    assert ok.outputs["2"] == {"value": [500]}  # max=10 ignored: VALIDATE_INPUTS takes `value`
    with pytest.raises(PromptValidationError) as info:
        engine.run({"1": node("Validated", value=13), "2": node("Collect", value=["1", 0])})
    error = info.value.result.node_errors["1"]["errors"][0]
    assert error["type"] == "custom_validation_failed" and "13 is unlucky" in error["details"]


def test_validate_inputs_receives_linked_input_types(semantics):
    engine, _ = semantics
    good = {"1": node("Const", value=1), "2": node("TypedInput", value=["1", 0]), "3": node("Collect", value=["2", 0])}
    assert engine.run(good).outputs["3"] == {"value": ["1"]}
    bad = {"1": node("Hidden"), "2": node("TypedInput", value=["1", 0]), "3": node("Collect", value=["2", 0])}
    with pytest.raises(PromptValidationError, match="wants INT, got STRING"):
        engine.run(bad)


def test_independent_branches_run_concurrently(semantics):
    engine, _ = semantics
    # a third-party pack's sync nodes run one at a time unless the user marks the pack parallel (issue 20)
    (engine.home.config_file).write_text("[packs.semantics]\nparallel = true\n")
    parallel = Engine(home=engine.home.root, builtin_packs=())
    try:
        prompt = {"1": node("MeetAtBarrier", value=1), "2": node("MeetAtBarrier", value=2),
                  "3": node("Collect", value=["1", 0]), "4": node("Collect", value=["2", 0])}
        result = parallel.run(prompt)  # a sequential executor would deadlock at the barrier and time out
        assert result.status == "success", result.error
    finally:
        parallel.close()


def test_concurrency_limit_serialises_a_class(semantics):
    engine, pack = semantics
    prompt = {"1": node("OneAtATime", value=1), "2": node("OneAtATime", value=2),
              "3": node("Collect", value=["1", 0]), "4": node("Collect", value=["2", 0])}
    assert engine.run(prompt).status == "success"
    assert pack.LIMITED_SEEN == ["alone", "alone"]


def test_async_nodes_are_awaited(semantics):
    engine, pack = semantics
    prompt = {"1": node("Const", value=1), "2": node("AsyncAddOne", value=["1", 0]),
              "3": node("AsyncAddOne", value=["2", 0]), "4": node("Collect", value=["3", 0])}
    assert engine.run(prompt).outputs["4"] == {"value": [3]}
    assert pack.CALLS.count("AsyncAddOne") == 2


def test_interrupt_stops_a_running_prompt(semantics):
    engine, _ = semantics
    prompt = {"1": node("WaitForInterrupt", value=1), "2": node("Collect", value=["1", 0])}

    def interrupt_when_started(event: Event) -> None:
        if isinstance(event, Executing) and event.node == "1":
            engine.interrupt()

    result = engine.run(prompt, sinks=[interrupt_when_started])
    assert result.status == "interrupted"
    assert result.messages[-1][0] == "execution_interrupted"
    assert engine.run({"1": node("Const", value=2), "2": node("Collect", value=["1", 0])}).status == "success"


def test_node_exception_is_reported_with_node_class_and_traceback(semantics):
    engine, _ = semantics
    result = engine.run({"1": node("Raise", value=7), "2": node("Collect", value=["1", 0])})
    assert result.status == "error"
    assert (result.error.node_id, result.error.class_type) == ("1", "Raise")
    assert result.error.message == "boom 7" and result.error.exception_type == "ValueError"
    assert "in run" in result.error.traceback
    assert result.messages[-1][0] == "execution_error"
    assert engine.run(chain_prompt()).status == "success"  # the engine carries on


@pytest.mark.parametrize("class_type, fragment", [
    ("WrongArity", "returned 2 value(s) but RETURN_TYPES declares 1"),
    ("WrongType", "declared INT but the node returned str"),
])
def test_wrong_return_values_get_clear_errors(semantics, class_type, fragment):
    engine, _ = semantics
    result = engine.run({"1": node(class_type), "2": node("Collect", value=["1", 0])})
    assert result.status == "error" and fragment in result.error.message
    assert result.error.node_id == "1"


def test_hidden_inputs(semantics):
    engine, _ = semantics
    prompt = {"7": node("Hidden"), "8": node("Collect", value=["7", 0])}
    result = engine.run(prompt, extra_data={"extra_pnginfo": {"workflow": {"k": 1}}})
    assert json.loads(result.outputs["8"]["value"][0]) == {"nodes": ["7", "8"], "id": "7", "extra": {"workflow": {"k": 1}}}


def test_events_in_order_with_progress_and_custom_messages(semantics):
    engine, _ = semantics
    events: list[Event] = []
    engine.run({"1": node("Report", steps=3), "2": node("Collect", value=["1", 0])}, sinks=[events.append])
    kinds = [type(e) for e in events]
    assert kinds[0] is ExecutionStart and kinds[-1] is ExecutionSuccess
    assert [e.value for e in events if isinstance(e, Progress)] == [1, 2, 3]
    custom = [e for e in events if isinstance(e, CustomMessage)]
    assert custom and custom[0].event == "semantics.done" and custom[0].data == {"steps": 3}
    executed = [e for e in events if isinstance(e, Executed) and e.node == "2"]
    assert executed and executed[0].output == {"value": [3]}
    assert kinds.index(Executing) < kinds.index(Executed)
    cached: list[Event] = []
    engine.run({"1": node("Report", steps=3), "2": node("Collect", value=["1", 0])}, sinks=[cached.append])
    # every cached node, as ComfyUI lists them: the hit and its ancestors
    assert [e.nodes for e in cached if isinstance(e, ExecutionCached)] == [["2", "1"]]


def test_validation_refuses_before_anything_runs(semantics):
    engine, pack = semantics
    prompt = {"1": node("Const", value=5000), "2": node("AddOne", value=["9", 0]), "3": node("Collect", value=["2", 0]),
              "4": node("Collect", value=["1", 0])}
    with pytest.raises(PromptValidationError) as info:
        engine.run(prompt)
    errors = info.value.result.node_errors
    assert errors["1"]["errors"][0]["type"] == "value_bigger_than_max"
    assert errors["2"]["errors"][0]["type"] == "bad_linked_input"
    assert pack.CALLS == []


def test_long_expansion_loop_does_not_recurse(semantics):
    engine, pack = semantics
    result = engine.run({"1": node("CountDown", n=600, total=0), "2": node("Collect", value=["1", 0])})
    assert result.status == "success", result.error
    assert result.outputs["2"] == {"value": [600 * 601 // 2]}


def test_async_node_failing_after_a_suspension_is_reported(semantics):
    engine, _ = semantics
    result = engine.run({"1": node("AsyncRaiseLater", value=3), "2": node("Collect", value=["1", 0])})
    assert result.status == "error"
    assert (result.error.node_id, result.error.message) == ("1", "late boom 3")


def test_interrupt_cancels_a_waiting_async_node(semantics):
    engine, pack = semantics

    def interrupt_when_started(event: Event) -> None:
        if isinstance(event, CustomMessage) and event.event == "semantics.waiting":
            engine.interrupt()

    result = engine.run({"1": node("AsyncWaitForever", value=1), "2": node("Collect", value=["1", 0])},
                        sinks=[interrupt_when_started])
    assert result.status == "interrupted"
    assert pack.AsyncWaitForever.CANCELLED == ["cancelled"]


def test_cached_output_nodes_show_their_result_again(semantics):
    engine, _ = semantics
    engine.run(chain_prompt())
    events: list[Event] = []
    engine.run(chain_prompt(), sinks=[events.append])
    replayed = [e for e in events if isinstance(e, Executed)]
    assert [(e.node, e.output) for e in replayed] == [("4", {"value": [3]})]
    kinds = [type(e) for e in events]
    assert kinds.index(ExecutionCached) < kinds.index(Executed)


def test_async_nodes_run_in_one_task_of_their_own(semantics):
    engine, _ = semantics
    prompt = {"1": node("AsyncWithTimeout", value=1), "2": node("AsyncWithTimeout", value=2),
              "3": node("Collect", value=["1", 0]), "4": node("Collect", value=["2", 0])}
    result = engine.run(prompt)
    assert result.status == "success", result.error
    assert result.outputs == {"3": {"value": [2]}, "4": {"value": [3]}}


def test_overlapping_prompts_do_not_evict_each_others_cached_results():
    from partyflow.engine.cache import ClassicCache, NodeResult

    cache = ClassicCache()
    outer, inner = NodeResult(([1],)), NodeResult(([2],))
    cache.begin_prompt()               # a prompt starts...
    cache.put("outer", outer)
    cache.begin_prompt()               # ...and runs a workflow as a tool inside it
    cache.put("inner", inner)
    cache.end_prompt(["inner"])
    assert cache.get("outer") is outer  # the nested run ending must not evict its caller's results
    cache.end_prompt(["outer"])
    assert cache.get("outer") is outer and cache.get("inner") is inner
    cache.begin_prompt()
    cache.end_prompt(["inner"])         # alone again: the classic rule applies
    assert cache.get("outer") is None and cache.get("inner") is inner
