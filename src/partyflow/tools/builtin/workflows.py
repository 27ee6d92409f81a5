"""The workflow-runner tool: the model picks one of the saved workflows in a folder by name and runs it.

Where `workflow_tool` turns one workflow into one tool, this offers a whole folder through a single tool, so a
library of workflows does not flood the model's context with one definition each. The description lists each
workflow's inputs and outputs (from their `input:`/`output:` node titles).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from partyflow.tools.base import Tool, ToolError
from partyflow.tools.workflow import WorkflowRunner, find_interface, run_workflow


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ToolError(f"workflow {path.stem!r} cannot be read ({exc})") from None
    if not isinstance(data, dict) or "nodes" in data:
        raise ToolError(f"workflow {path.stem!r} is not in API format (export it with 'Save (API)')")
    return data


def workflow_runner_tool(folder: Path, runner: WorkflowRunner, *, name: str = "run_workflow") -> Tool:
    """A tool running `folder/<workflow>.json` with `inputs` set on its `input:` nodes."""
    folder = Path(folder)
    catalog = []
    for path in sorted(folder.glob("*.json")):
        try:
            inputs, outputs = find_interface(_load(path))
        except ToolError:
            continue
        if outputs:
            catalog.append(f"- {path.stem}: inputs {', '.join(i.name for i in inputs) or 'none'}; "
                           f"outputs {', '.join(o.name for o in outputs)}")
    description = "Run a saved workflow by name with named inputs; returns its named outputs.\n" + (
        "\n".join(catalog) if catalog else "(no workflows with output: nodes are saved yet)")

    async def run(workflow: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
        path = (folder / f"{workflow}.json").resolve()
        if path.parent != folder.resolve() or not path.is_file():
            raise ToolError(f"no workflow named {workflow!r}; choose one from the list in the tool description")
        prompt = _load(path)
        found_inputs, outputs = find_interface(prompt)
        if not outputs:
            raise ToolError(f"workflow {workflow!r} has no node titled 'output:NAME'")
        unknown = set(inputs or {}) - {i.name for i in found_inputs}
        if unknown:
            raise ToolError(f"workflow {workflow!r} has no input(s) {', '.join(sorted(unknown))}; it takes "
                            f"{', '.join(i.name for i in found_inputs) or 'none'}")
        return await run_workflow(prompt, runner, found_inputs, outputs, inputs or {})

    parameters = {"type": "object", "properties": {
        "workflow": {"type": "string", "description": "The workflow's name, from the list."},
        "inputs": {"type": "object", "description": "Values for the workflow's inputs, by name."}},
        "required": ["workflow"]}
    return Tool(name=name, description=description, parameters=parameters, fn=run, metadata={"kind": "workflow"})
