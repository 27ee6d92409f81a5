"""Tools for agents: a definition the model sees joined to the code that runs it. Knows nothing of nodes.

Tools come from Python functions (`function_tool`), from workflows (`workflow_tool`), from agents
(`partyflow.agents.agent_tool`) and from the built-in set (`partyflow.tools.builtin`).
"""

from partyflow.tools.base import Tool, ToolError, ToolFunction, result_text
from partyflow.tools.functions import arguments_model, function_tool, parse_docstring
from partyflow.tools.validate import ArgumentError, check_arguments, check_json
from partyflow.tools.workflow import WorkflowRunner, find_interface, workflow_tool

__all__ = [
    "ArgumentError", "Tool", "ToolError", "ToolFunction", "WorkflowRunner", "arguments_model", "check_arguments", "check_json",
    "find_interface", "function_tool", "parse_docstring", "result_text", "workflow_tool",
]
