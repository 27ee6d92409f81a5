"""The node interface read into definitions, and object_info in ComfyUI's exact shape (reference/comfyui.md §2)."""

from __future__ import annotations

import pytest

from partyflow.nodes.protocol import NodeDefinitionError, define
from partyflow.nodes.registry import NodeRegistry


class Everything:
    """A V1 class declaring every member object_info reports."""

    DESCRIPTION = "Uses every part of the interface."
    CATEGORY = "tests/protocol"
    RETURN_TYPES = ("STRING", "INT", "*")
    RETURN_NAMES = ("text", "count", "anything")
    OUTPUT_IS_LIST = (False, True, False)
    OUTPUT_TOOLTIPS = ("the text", "one count per item", "passed through")
    OUTPUT_NODE = True
    DEPRECATED = True
    EXPERIMENTAL = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text": ("STRING", {"default": "hi", "multiline": True}),
                "count": ("INT", {"default": 1, "min": 0, "max": 10, "step": 2}),
                "mode": (["a", "b"], {"default": "a"}),
                "size": ("COMBO", {"options": ["s", "m"], "default": "m"}),
            },
            "optional": {
                "ratio": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.1, "round": 0.01}),
                "flag": ("BOOLEAN", {"default": False, "forceInput": True}),
                "value": ("*", {"lazy": True}),
                "image": ("IMAGE",),
            },
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID", "extra_pnginfo": "EXTRA_PNGINFO",
                       "dynprompt": "DYNPROMPT"},
        }

    async def run(self, **inputs):
        return (inputs["text"], [inputs["count"]], inputs.get("value"))


def test_object_info_has_comfyuis_shape_for_every_member() -> None:
    registry = NodeRegistry()
    registry.register("Everything", Everything, display_name="Every Thing", pack="protocol_pack",
                      python_module="custom_nodes.protocol_pack")

    info = registry.object_info()["Everything"]

    assert info == {
        "input": {
            "required": {
                "text": ["STRING", {"default": "hi", "multiline": True}],
                "count": ["INT", {"default": 1, "min": 0, "max": 10, "step": 2}],
                "mode": [["a", "b"], {"default": "a"}],
                "size": ["COMBO", {"options": ["s", "m"], "default": "m"}],
            },
            "optional": {
                "ratio": ["FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.1, "round": 0.01}],
                "flag": ["BOOLEAN", {"default": False, "forceInput": True}],
                "value": ["*", {"lazy": True}],
                "image": ["IMAGE"],
            },
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID", "extra_pnginfo": "EXTRA_PNGINFO",
                       "dynprompt": "DYNPROMPT"},
        },
        "input_order": {"required": ["text", "count", "mode", "size"],
                        "optional": ["ratio", "flag", "value", "image"]},
        "output": ["STRING", "INT", "*"],
        "output_is_list": [False, True, False],
        "output_name": ["text", "count", "anything"],
        "output_tooltips": ["the text", "one count per item", "passed through"],
        "name": "Everything",
        "display_name": "Every Thing",
        "description": "Uses every part of the interface.",
        "python_module": "custom_nodes.protocol_pack",
        "category": "tests/protocol",
        "output_node": True,
        "deprecated": True,
        "experimental": True,
    }


def test_definition_reads_flags_async_functions_and_widgets() -> None:
    definition = define("Everything", Everything)
    assert definition.is_async and definition.deprecated and definition.experimental and definition.output_node
    assert definition.inputs["value"].lazy and not definition.inputs["text"].lazy
    assert definition.inputs["mode"].choices == ("a", "b") and definition.inputs["size"].choices == ("s", "m")
    assert definition.inputs["count"].is_widget and not definition.inputs["flag"].is_widget  # forceInput: socket only
    assert not definition.inputs["image"].is_widget
    assert definition.hidden == {"prompt": "PROMPT", "unique_id": "UNIQUE_ID", "extra_pnginfo": "EXTRA_PNGINFO",
                                 "dynprompt": "DYNPROMPT"}


def test_a_plain_class_gets_comfyuis_defaults() -> None:
    class Plain:
        RETURN_TYPES = ()
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        def run(self):
            return ()

    info = define("Plain", Plain).object_info()
    assert (info["category"], info["display_name"], info["description"]) == ("sd", "Plain", "")
    assert not (info["output_node"] or info["deprecated"] or info["experimental"])
    assert info["input"] == {"required": {}} and info["input_order"] == {"required": []}


@pytest.mark.parametrize("members, fragment", [
    ({"RETURN_TYPES": ("INT",), "FUNCTION": "nope"}, "FUNCTION must name a method"),
    ({"RETURN_TYPES": "INT", "FUNCTION": "run"}, "RETURN_TYPES must be a tuple of strings"),
    ({"RETURN_TYPES": ("INT",), "RETURN_NAMES": ("a", "b"), "FUNCTION": "run"}, "RETURN_NAMES has 2 names"),
    ({"RETURN_TYPES": ("INT",), "OUTPUT_IS_LIST": (True, False), "FUNCTION": "run"}, "OUTPUT_IS_LIST has 2"),
    ({"RETURN_TYPES": ("INT",), "FUNCTION": "run", "CONCURRENCY_LIMIT": 0}, "CONCURRENCY_LIMIT must be"),
])
def test_a_class_that_breaks_the_interface_is_named_with_the_fix(members: dict, fragment: str) -> None:
    cls = type("Broken", (), {**members, "INPUT_TYPES": classmethod(lambda c: {"required": {}}),
                              "run": lambda self: (1,)})
    with pytest.raises(NodeDefinitionError, match="node class 'Broken'") as raised:
        define("Broken", cls)
    assert fragment in str(raised.value)
