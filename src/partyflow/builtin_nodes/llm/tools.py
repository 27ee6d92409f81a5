"""Tool definitions on `TOOL` links: a node to declare one, and the conversion the Chat node applies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from partyflow.llm import Tool

from .sockets import TOOL

CATEGORY = "partyflow/llm"


def to_tools(value: Any) -> tuple[Tool, ...]:
    """Tools from a `TOOL` value: a `Tool`, a dict (ours or OpenAI's `{"type": "function", ...}`), JSON text,
    or a list of those. Packs that make tools need only produce one of these shapes."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"tools are not valid JSON ({exc})") from None
    items = value if isinstance(value, list | tuple) else [value]
    return tuple(_to_tool(item) for item in items)


def _to_tool(item: Any) -> Tool:
    if isinstance(item, Tool):
        return item
    definition = getattr(item, "definition", None)  # objects that carry a definition (for example agent tools)
    if isinstance(definition, Tool):
        return definition
    if not isinstance(item, Mapping):
        raise ValueError(f"a tool must be a definition (name, description, parameters), got {type(item).__name__}")
    if item.get("type") == "function" and isinstance(item.get("function"), Mapping):
        item = item["function"]
    try:
        return Tool.model_validate(dict(item))
    except ValidationError as exc:
        name = item.get("name", "?")
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors(include_url=False))
        raise ValueError(f"tool {name!r} is not a valid definition: {problems}") from None


class ToolDefinition:
    DESCRIPTION = "Declare a function the model may call: a name, what it does and its parameters as JSON Schema."
    CATEGORY = CATEGORY
    RETURN_TYPES = (TOOL,)
    RETURN_NAMES = ("tools",)
    OUTPUT_TOOLTIPS = ("The tools linked in, plus this one.",)
    FUNCTION = "define"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "name": ("STRING", {"default": "my_tool", "tooltip": "1-64 letters, digits, '_' or '-'."}),
                "description": ("STRING", {"default": "", "multiline": True,
                                           "tooltip": "When the model should call it, and what it returns."}),
                "parameters": ("STRING", {"default": '{"type": "object", "properties": {}}', "multiline": True,
                                          "tooltip": "A JSON Schema object for the arguments."}),
            },
            "optional": {"tools": (TOOL, {"tooltip": "More tools to offer alongside this one."})},
        }

    def define(self, name, description, parameters, tools=None):
        try:
            schema = json.loads(parameters or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"the parameters of tool {name!r} are not valid JSON ({exc})") from None
        tool = _to_tool({"name": name, "description": description, "parameters": schema})
        return ([t.model_dump(mode="json") for t in (*to_tools(tools), tool)],)


NODE_CLASS_MAPPINGS = {"ToolDefinition": ToolDefinition}
NODE_DISPLAY_NAME_MAPPINGS = {"ToolDefinition": "Tool Definition"}
