"""An unchanged prompt is not validated twice, and nothing it depends on can change behind the memo's back."""

from __future__ import annotations

from partyflow.graph.validate import PromptValidator
from partyflow.nodes.registry import NodeRegistry


def _make_classes(choices: list[str]):
    class Pick:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"name": (list(choices),)}}
        RETURN_TYPES = ("STRING",)
        FUNCTION = "run"
        OUTPUT_NODE = True

        def run(self, name):
            return (name,)

    class Checked(Pick):
        @classmethod
        def VALIDATE_INPUTS(cls, name):
            return True

    return Pick, Checked


def _validator(choices: list[str]) -> tuple[PromptValidator, NodeRegistry]:
    registry = NodeRegistry()
    pick, checked = _make_classes(choices)
    registry.register("Pick", pick)
    registry.register("Checked", checked)
    return PromptValidator(registry), registry


def test_identical_prompt_reuses_the_result() -> None:
    validator, _ = _validator(["a", "b"])
    prompt = {"1": {"class_type": "Pick", "inputs": {"name": "a"}}}
    first = validator.validate(prompt)
    assert first.ok
    assert validator.validate({"1": {"class_type": "Pick", "inputs": {"name": "a"}}}) is first


def test_editing_the_prompt_in_place_is_noticed() -> None:
    validator, _ = _validator(["a", "b"])
    prompt = {"1": {"class_type": "Pick", "inputs": {"name": "a"}}}
    first = validator.validate(prompt)
    prompt["1"]["inputs"]["name"] = "zzz"
    second = validator.validate(prompt)
    assert second is not first and not second.ok
    assert second.node_errors["1"]["errors"][0]["type"] == "value_not_in_list"


def test_changed_input_types_invalidate_the_memo() -> None:
    choices = ["a", "b"]
    validator, _ = _validator(choices)
    prompt = {"1": {"class_type": "Pick", "inputs": {"name": "a"}}}
    assert validator.validate(prompt).ok
    choices.remove("a")  # e.g. a file that a combo listed was deleted
    assert not validator.validate(prompt).ok


def test_classes_with_validate_inputs_are_always_rechecked() -> None:
    validator, _ = _validator(["a"])
    prompt = {"1": {"class_type": "Checked", "inputs": {"name": "a"}}}
    first = validator.validate(prompt)
    assert first.ok and validator.validate(prompt) is not first


def test_a_reregistered_class_invalidates_the_memo() -> None:
    validator, registry = _validator(["a"])
    prompt = {"1": {"class_type": "Pick", "inputs": {"name": "a"}}}
    first = validator.validate(prompt)
    replacement, _ = _make_classes(["a"])
    registry.register("Pick", replacement, pack="other")
    assert validator.validate(prompt) is not first
