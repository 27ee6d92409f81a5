"""Booleans and branching: a switch that runs only the chosen branch, and/or/not, and a gate."""

from __future__ import annotations

from comfy_execution.graph import ExecutionBlocker

from .sockets import ANY

CATEGORY = "partyflow/logic"


def _bool(tooltip: str, **options):
    return ("BOOLEAN", {"default": False, "tooltip": tooltip, **options})


class LazySwitch:
    DESCRIPTION = ("Pass on one of two values by a condition. Both branches are lazy: only the chosen one "
                   "is computed.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (ANY,)
    RETURN_NAMES = ("value",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "condition": _bool("Which branch to use: on_true when true, on_false when false."),
            "on_true": (ANY, {"lazy": True, "tooltip": "Computed and passed on only when condition is true."}),
            "on_false": (ANY, {"lazy": True, "tooltip": "Computed and passed on only when condition is false."}),
        }}

    def check_lazy_status(self, condition, on_true=None, on_false=None):
        """Ask the host for the chosen branch only; the other one never runs."""
        if condition:
            return ["on_true"] if on_true is None else []
        return ["on_false"] if on_false is None else []

    def run(self, condition, on_true=None, on_false=None):
        return (on_true if condition else on_false,)


class BooleanAnd:
    DESCRIPTION = "True when both inputs are true; b is not computed when a is already false."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("BOOLEAN",)
    RETURN_NAMES = ("result",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": _bool("The first condition."),
                             "b": _bool("The second condition (lazy).", lazy=True)}}

    def check_lazy_status(self, a, b=None):
        return ["b"] if a and b is None else []

    def run(self, a, b=None):
        return (bool(a) and bool(b),)


class BooleanOr:
    DESCRIPTION = "True when either input is true; b is not computed when a is already true."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("BOOLEAN",)
    RETURN_NAMES = ("result",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": _bool("The first condition."),
                             "b": _bool("The second condition (lazy).", lazy=True)}}

    def check_lazy_status(self, a, b=None):
        return ["b"] if not a and b is None else []

    def run(self, a, b=None):
        return (bool(a) or bool(b),)


class BooleanNot:
    DESCRIPTION = "The opposite of the input."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("BOOLEAN",)
    RETURN_NAMES = ("result",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": _bool("The condition to invert.")}}

    def run(self, value):
        return (not value,)


class ExecutionGate:
    DESCRIPTION = ("Pass a value on when enabled; otherwise, nothing downstream runs (silently, or failing with "
                   "the message if one is given). Useful to skip an output node.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (ANY,)
    RETURN_NAMES = ("value",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "value": (ANY, {"forceInput": True, "tooltip": "The value to pass on."}),
            "enabled": ("BOOLEAN", {"default": True, "tooltip": "Whether the value passes."}),
            "message": ("STRING", {"default": "", "tooltip": "If set, a disabled gate fails downstream nodes "
                                                             "with this message instead of skipping them."}),
        }}

    def run(self, value, enabled, message):
        if enabled:
            return (value,)
        return (ExecutionBlocker(message or None),)


NODE_CLASS_MAPPINGS = {
    "LazySwitch": LazySwitch,
    "BooleanAnd": BooleanAnd,
    "BooleanOr": BooleanOr,
    "BooleanNot": BooleanNot,
    "ExecutionGate": ExecutionGate,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "LazySwitch": "Switch (lazy)",
    "BooleanAnd": "And",
    "BooleanOr": "Or",
    "BooleanNot": "Not",
    "ExecutionGate": "Gate",
}
