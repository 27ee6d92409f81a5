"""The tools partyflow ships: time, calculator, confined files, HTTP fetch, Python code, text search, workflows."""

from partyflow.tools.builtin.calculator import calculator_tool, evaluate
from partyflow.tools.builtin.clock import current_time_tool
from partyflow.tools.builtin.files import file_tools
from partyflow.tools.builtin.http import host_allowed, http_fetch_tool
from partyflow.tools.builtin.lookup import lookup_tool
from partyflow.tools.builtin.python_exec import SandboxLimits, python_tool, run_python
from partyflow.tools.builtin.search import search_lines, text_search_tool
from partyflow.tools.builtin.workflows import workflow_runner_tool

__all__ = [
    "SandboxLimits", "calculator_tool", "current_time_tool", "evaluate", "file_tools", "host_allowed",
    "http_fetch_tool", "lookup_tool", "python_tool", "run_python", "search_lines", "text_search_tool", "workflow_runner_tool",
]
