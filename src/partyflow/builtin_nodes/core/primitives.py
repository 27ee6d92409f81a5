"""Constant values typed into a widget: the starting points of most workflows."""

from __future__ import annotations

CATEGORY = "partyflow/primitives"


class TextValue:
    DESCRIPTION = "A single line of text."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("STRING", {"default": "", "tooltip": "The text to output."})}}

    def run(self, value):
        return (value,)


class MultilineText:
    DESCRIPTION = "A block of text over several lines, such as a prompt or a template."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("STRING", {"default": "", "multiline": True,
                                                  "tooltip": "The text to output, newlines kept."})}}

    def run(self, value):
        return (value,)


class IntValue:
    DESCRIPTION = "A whole number."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("value",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**63), "max": 2**63 - 1,
                                               "tooltip": "The integer to output."})}}

    def run(self, value):
        return (int(value),)


class FloatValue:
    DESCRIPTION = "A decimal number."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("FLOAT",)
    RETURN_NAMES = ("value",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("FLOAT", {"default": 0.0, "min": -1e300, "max": 1e300, "step": 0.01,
                                                 "round": False, "tooltip": "The number to output."})}}

    def run(self, value):
        return (float(value),)


class BooleanValue:
    DESCRIPTION = "True or false, for switches and conditions."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("BOOLEAN",)
    RETURN_NAMES = ("value",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("BOOLEAN", {"default": False, "tooltip": "The truth value to output."})}}

    def run(self, value):
        return (bool(value),)


NODE_CLASS_MAPPINGS = {
    "TextValue": TextValue,
    "MultilineText": MultilineText,
    "IntValue": IntValue,
    "FloatValue": FloatValue,
    "BooleanValue": BooleanValue,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "TextValue": "Text",
    "MultilineText": "Multiline Text",
    "IntValue": "Integer",
    "FloatValue": "Float",
    "BooleanValue": "Boolean",
}
