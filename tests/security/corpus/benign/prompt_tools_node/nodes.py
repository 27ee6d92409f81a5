"""Numeric expressions are parsed with ast and evaluated by hand: no eval() of user text."""

import ast
import operator
import random
import re
from pathlib import Path

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.USub: operator.neg, ast.Mod: operator.mod}
WILDCARDS = Path(__file__).parent / "wildcards"


def safe_eval(expression, variables):
    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name) and node.id in variables:
            return variables[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.operand))
        raise ValueError(f"unsupported expression: {ast.dump(node)}")

    return walk(ast.parse(expression, mode="eval"))


class SafeMath:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"expression": ("STRING", {"default": "a * 2"}), "a": ("FLOAT", {"default": 1.0})}}

    RETURN_TYPES = ("FLOAT",)
    FUNCTION = "run"
    CATEGORY = "utils"

    def run(self, expression, a):
        return (float(safe_eval(expression, {"a": a})),)


class PromptTemplate:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"template": ("STRING", {"multiline": True}), "subject": ("STRING", {})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "utils"

    def run(self, template, subject):
        return (template.replace("{subject}", subject),)


class Wildcards:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True}), "seed": ("INT", {"default": 0})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "utils"

    def run(self, text, seed):
        rng = random.Random(seed)

        def pick(match):
            path = WILDCARDS / f"{match.group(1)}.txt"
            options = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            return rng.choice(options)

        return (re.sub(r"__([a-z0-9_]+)__", pick, text),)
