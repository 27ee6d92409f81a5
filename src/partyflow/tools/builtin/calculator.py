"""The calculator tool: arithmetic from the model, evaluated by walking the parsed expression, never by `eval`.

Only number literals, the arithmetic operators, a few named constants and math functions are accepted; anything
else (names, attributes, calls of other things, comprehensions) is refused before any evaluation. Exponents and
factorials are bounded so "9**9**9" cannot hang the process.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from partyflow.tools.base import Tool, ToolError
from partyflow.tools.functions import function_tool

MAX_EXPONENT = 10_000
MAX_LENGTH = 1_000

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max, "floor": math.floor, "ceil": math.ceil,
    "log": math.log, "log10": math.log10, "log2": math.log2, "exp": math.exp, "sin": math.sin, "cos": math.cos,
    "tan": math.tan, "asin": math.asin, "acos": math.acos, "atan": math.atan, "hypot": math.hypot,
    "factorial": lambda n: math.factorial(_bounded_int(n, 1000, "factorial")),
}


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression; `ToolError` says what is not allowed or what went wrong."""
    if len(expression) > MAX_LENGTH:
        raise ToolError(f"the expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not an arithmetic expression ({exc.msg})") from None
    try:
        return _eval(tree.body)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except (OverflowError, ValueError, TypeError) as exc:
        raise ToolError(f"cannot compute: {exc}") from None


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"exponent {right} is larger than {MAX_EXPONENT}")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
            and not node.keywords):
        return _FUNCTIONS[node.func.id](*(_eval(arg) for arg in node.args))
    raise ToolError(f"{ast.unparse(node)!r} is not allowed; use numbers, + - * / // % **, parentheses, "
                    f"{', '.join(_CONSTANTS)} and {', '.join(sorted(_FUNCTIONS))}")


def _bounded_int(value: Any, limit: int, what: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= limit:
        raise ToolError(f"{what} takes a whole number from 0 to {limit}")
    return value


def calculator_tool() -> Tool:
    def calculator(expression: str) -> int | float:
        """Evaluate an arithmetic expression exactly, e.g. '(17 * 23) / 4' or 'sqrt(2) * pi'.

        Args:
            expression: Numbers, + - * / // % ** and parentheses, constants pi/e/tau and functions such as
                sqrt, log, sin, round, min, max.
        """
        return evaluate(expression)

    return function_tool(calculator)
