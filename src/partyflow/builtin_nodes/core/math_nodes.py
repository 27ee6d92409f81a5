"""Arithmetic on integers and floats, and comparisons; operations are chosen from a list, never evaluated."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from .sockets import ANY

CATEGORY = "partyflow/math"

MAX_INT_BITS = 4096  # a power beyond this is almost surely a mistake and would stall the worker


def _int_power(a: int, b: int) -> int:
    if b < 0:
        raise ValueError(f"{a} ** {b} is a fraction; use Float Math for negative powers")
    if abs(a) > 1 and b * math.log2(abs(a)) > MAX_INT_BITS:
        raise ValueError(f"{a} ** {b} is too large (over {MAX_INT_BITS} bits)")
    return a**b


def _checked_division(divide: Callable[[Any, Any], Any], symbol: str) -> Callable[[Any, Any], Any]:
    def run(a: Any, b: Any) -> Any:
        if b == 0:
            raise ValueError(f"cannot compute {a} {symbol} {b}: division by zero")
        return divide(a, b)
    return run


INT_OPERATIONS: dict[str, Callable[[int, int], int]] = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "floor divide": _checked_division(operator.floordiv, "//"),
    "modulo": _checked_division(operator.mod, "%"),
    "power": _int_power,
    "min": min,
    "max": max,
}

FLOAT_OPERATIONS: dict[str, Callable[[float, float], float]] = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": _checked_division(operator.truediv, "/"),
    "floor divide": _checked_division(operator.floordiv, "//"),
    "modulo": _checked_division(operator.mod, "%"),
    "power": operator.pow,
    "min": min,
    "max": max,
}

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _pick(table: dict[str, Any], operation: str) -> Any:
    if operation not in table:
        raise ValueError(f"unknown operation {operation!r}; choose one of {', '.join(table)}")
    return table[operation]


def _number_input(kind: str, tooltip: str) -> tuple[str, dict[str, Any]]:
    if kind == "INT":
        return ("INT", {"default": 0, "min": -(2**63), "max": 2**63 - 1, "tooltip": tooltip})
    return ("FLOAT", {"default": 0.0, "min": -1e300, "max": 1e300, "step": 0.01, "round": False, "tooltip": tooltip})


class IntMath:
    DESCRIPTION = "Integer arithmetic: add, subtract, multiply, floor divide, modulo, power, min or max."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("result",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "a": _number_input("INT", "The left operand."),
            "operation": (list(INT_OPERATIONS), {"default": "add", "tooltip": "What to compute from a and b."}),
            "b": _number_input("INT", "The right operand."),
        }}

    def run(self, a, operation, b):
        return (int(_pick(INT_OPERATIONS, operation)(int(a), int(b))),)


class FloatMath:
    DESCRIPTION = "Decimal arithmetic: add, subtract, multiply, divide, floor divide, modulo, power, min or max."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("FLOAT",)
    RETURN_NAMES = ("result",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "a": _number_input("FLOAT", "The left operand."),
            "operation": (list(FLOAT_OPERATIONS), {"default": "add", "tooltip": "What to compute from a and b."}),
            "b": _number_input("FLOAT", "The right operand."),
        }}

    def run(self, a, operation, b):
        compute = _pick(FLOAT_OPERATIONS, operation)
        try:
            result = compute(float(a), float(b))
        except OverflowError:
            raise ValueError(f"{operation} of {a} and {b} is too large for a float") from None
        if isinstance(result, complex) or not math.isfinite(result):
            raise ValueError(f"{operation} of {a} and {b} has no finite real result")
        return (float(result),)


class CompareValues:
    DESCRIPTION = "Compare two values (numbers, texts, ...) and output true or false."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("BOOLEAN",)
    RETURN_NAMES = ("result",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "a": (ANY, {"forceInput": True, "tooltip": "The left value."}),
            "operation": (list(COMPARISONS), {"default": "==", "tooltip": "How a relates to b."}),
            "b": (ANY, {"forceInput": True, "tooltip": "The right value."}),
        }}

    def run(self, a, operation, b):
        compare = _pick(COMPARISONS, operation)
        try:
            return (bool(compare(a, b)),)
        except TypeError:
            raise ValueError(f"cannot compare {type(a).__name__} {operation} {type(b).__name__}; "
                             "convert one side first (e.g. Text to Number)") from None


NODE_CLASS_MAPPINGS = {
    "IntMath": IntMath,
    "FloatMath": FloatMath,
    "CompareValues": CompareValues,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "IntMath": "Integer Math",
    "FloatMath": "Float Math",
    "CompareValues": "Compare",
}
