"""Workflows as tools: a saved workflow whose input and output nodes are named becomes a tool.

A node titled `input:NAME` (its `_meta.title`, which the UI shows and edits) is an argument: the argument's value
replaces the node's `value` widget (the primitives of the core pack: TextValue, IntValue, ...), and the widget's
current value gives the JSON type and the default. A node titled `output:NAME` is a result: its first output is
returned under NAME. The workflow runs through an engine (anything with `Engine.run_async`'s signature), so it
gets validation, caching and events like any other prompt; this module imports no engine.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from partyflow.tools.base import Tool, ToolError

INPUT_PREFIX = "input:"
OUTPUT_PREFIX = "output:"
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


class WorkflowRunner(Protocol):
    """What runs a workflow: `partyflow.Engine` is one."""

    async def run_async(self, workflow: Mapping[str, Any], *, outputs: list[str] | None = ...,
                        ) -> Any: ...


@dataclass(frozen=True)
class WorkflowInput:
    name: str
    node_id: str
    widget: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class WorkflowOutput:
    name: str
    node_id: str
    index: int = 0


def find_interface(prompt: Mapping[str, Any], *, widget: str = "value",
                   ) -> tuple[list[WorkflowInput], list[WorkflowOutput]]:
    """The named inputs and outputs of an API-format prompt, by node title."""
    inputs: list[WorkflowInput] = []
    outputs: list[WorkflowOutput] = []
    for node_id, node in prompt.items():
        title = str((node.get("_meta") or {}).get("title", "")).strip()
        if title.lower().startswith(INPUT_PREFIX):
            name = title[len(INPUT_PREFIX):].strip()
            current = (node.get("inputs") or {}).get(widget)
            schema: dict[str, Any] = {"type": _JSON_TYPES.get(type(current), "string")}
            if current is not None and not isinstance(current, list):
                schema["default"] = current
            description = (node.get("_meta") or {}).get("description")
            if description:
                schema["description"] = str(description)
            inputs.append(WorkflowInput(name, str(node_id), widget, schema))
        elif title.lower().startswith(OUTPUT_PREFIX):
            outputs.append(WorkflowOutput(title[len(OUTPUT_PREFIX):].strip(), str(node_id)))
    return inputs, outputs


def workflow_tool(prompt: Mapping[str, Any], runner: WorkflowRunner, *, name: str, description: str = "",
                  timeout: float | None = None) -> Tool:
    """A tool that runs `prompt` (API format) with the model's arguments set on its `input:` nodes.

    Raises `ValueError` when the workflow names no `output:` node: a tool that returns nothing is a mistake.
    """
    inputs, outputs = find_interface(prompt)
    if not outputs:
        raise ValueError(f"workflow tool {name!r}: no node is titled 'output:NAME', so the tool would return "
                         "nothing; set the title of the node whose first output is the result")
    properties = {item.name: item.schema for item in inputs}
    required = [item.name for item in inputs if "default" not in item.schema]
    parameters = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    base = copy.deepcopy(dict(prompt))

    async def run(**arguments: Any) -> Any:
        return await run_workflow(base, runner, inputs, outputs, arguments)

    return Tool(name=name, description=description or f"Run the workflow {name!r}.", parameters=parameters,
                fn=run, timeout=timeout, metadata={"kind": "workflow"})


async def run_workflow(prompt: Mapping[str, Any], runner: WorkflowRunner, inputs: list[WorkflowInput],
                       outputs: list[WorkflowOutput], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Run a copy of `prompt` with `arguments` on its inputs; the outputs by name, or `ToolError` on failure."""
    prompt = copy.deepcopy(dict(prompt))
    for item in inputs:
        if item.name in arguments:
            prompt[item.node_id]["inputs"][item.widget] = arguments[item.name]
    result = await runner.run_async(prompt, outputs=[o.node_id for o in outputs])
    if not getattr(result, "ok", False):
        error = getattr(result, "error", None)
        where = f" at node {error.node_id}" if getattr(error, "node_id", "") else ""
        message = getattr(error, "message", None) or getattr(error, "exception_message", None) or str(error)
        raise ToolError(f"the workflow failed{where}: {message}")
    return {o.name: result.output(o.node_id, o.index) for o in outputs}
