"""Tool nodes: each outputs runnable tools on a TOOL link (its own plus those linked in), for Agent nodes.

File, search and code tools are confined to the home's folders; the HTTP tool only reaches the hosts listed on
the node. Workflow tools run saved workflows on the engine that runs the tool node (see `runner`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from partyflow.tools import workflow_tool
from partyflow.tools.builtin import (
    SandboxLimits,
    calculator_tool,
    current_time_tool,
    file_tools,
    http_fetch_tool,
    lookup_tool,
    python_tool,
    text_search_tool,
    workflow_runner_tool,
)
from partyflow.tools.builtin.files import confine

from .common import CATEGORY, TOOL, chain, code_tools_decision, current_home, require_code_tools
from .runner import workflow_runner

TOOL_CATEGORY = f"{CATEGORY}/tools"


def _more() -> dict[str, Any]:
    return {"tools": (TOOL, {"tooltip": "More tools to offer alongside these."})}


class _ToolNode:
    CATEGORY = TOOL_CATEGORY
    RETURN_TYPES = (TOOL,)
    RETURN_NAMES = ("tools",)
    FUNCTION = "make"


class CurrentTimeTool(_ToolNode):
    DESCRIPTION = "A tool telling the model the current date and time, in any time zone."

    @classmethod
    def INPUT_TYPES(cls):
        return {"optional": _more()}

    def make(self, tools=None):
        return (chain(tools, current_time_tool()),)


class CalculatorTool(_ToolNode):
    DESCRIPTION = "A tool computing arithmetic exactly (parsed, never eval'd): + - * / ** and math functions."

    @classmethod
    def INPUT_TYPES(cls):
        return {"optional": _more()}

    def make(self, tools=None):
        return (chain(tools, calculator_tool()),)


class FileTools(_ToolNode):
    DESCRIPTION = ("Tools to list and read files in the home's input folder and write files into its output "
                   "folder; paths cannot leave those folders.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"optional": {"allow_write": ("BOOLEAN", {"default": True, "tooltip": "Offer write_file."}),
                             **_more()}}

    def make(self, allow_write=True, tools=None):
        home = current_home()
        made = [t for t in file_tools(home.input, home.output) if allow_write or t.name != "write_file"]
        return (chain(tools, made),)


class HTTPFetchTool(_ToolNode):
    DESCRIPTION = "A tool fetching URLs by HTTP GET, only from the listed hosts, with size and time limits."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"allowed_hosts": ("STRING", {"default": "", "multiline": True, "tooltip": (
                "One host per line (example.com, or *.example.com for its subdomains); nothing else is reachable.")})},
            "optional": {
                "max_kilobytes": ("INT", {"default": 512, "min": 1, "max": 65_536}),
                "timeout": ("FLOAT", {"default": 10.0, "min": 0.5, "max": 600.0}),
                **_more(),
            },
        }

    def make(self, allowed_hosts, max_kilobytes=512, timeout=10.0, tools=None):
        hosts = [line.strip() for line in allowed_hosts.replace(",", "\n").splitlines() if line.strip()]
        if not hosts:
            raise ValueError("list at least one allowed host: the fetch tool reaches nothing else")
        return (chain(tools, http_fetch_tool(hosts, max_bytes=max_kilobytes * 1024, timeout=timeout)),)


class PythonCodeTool(_ToolNode):
    DESCRIPTION = ("A tool running Python code (standard library) in an OS sandbox (bubblewrap) without network, "
                   "with time and memory limits, writing only in a work folder under the home's output folder. "
                   "Over HTTP it needs [server] allow_code_tools = true in config.toml; off at security level "
                   "strong.")
    PARTYFLOW_RUNS_CODE = True  # the server refuses prompts with this node where the policy does not allow it

    @classmethod
    def INPUT_TYPES(cls):
        return {"optional": {
            "work_folder": ("STRING", {"default": "code", "tooltip": "Under the output folder; files persist."}),
            "timeout": ("FLOAT", {"default": 10.0, "min": 0.5, "max": 600.0}),
            "memory_mb": ("INT", {"default": 512, "min": 64, "max": 65_536}),
            **_more(),
        }}

    @classmethod
    def IS_CHANGED(cls, **_: Any) -> str:
        """The policy's answer: a cached tool is not reused after the level or setting changed."""
        decision = code_tools_decision()
        return f"{decision.allowed}:{decision.reason}"

    def make(self, work_folder="code", timeout=10.0, memory_mb=512, tools=None):
        require_code_tools()
        folder = confine(current_home().output, work_folder or "code")
        limits = SandboxLimits(wall_seconds=timeout, cpu_seconds=max(1, int(timeout)),
                               memory_bytes=memory_mb * 1024 * 1024)
        # the tool asks again at each call: an agent may reuse it from the cache in a later prompt
        return (chain(tools, python_tool(workdir=Path(folder), limits=limits, guard=require_code_tools)),)


class TextSearchTool(_ToolNode):
    DESCRIPTION = "A tool finding lines that contain given words in the text files of a folder of the home's input."

    @classmethod
    def INPUT_TYPES(cls):
        return {"optional": {
            "folder": ("STRING", {"default": "", "tooltip": "Under the input folder; empty: the whole folder."}),
            "name": ("STRING", {"default": "search_text"}),
            **_more(),
        }}

    def make(self, folder="", name="search_text", tools=None):
        return (chain(tools, text_search_tool(confine(current_home().input, folder or "."), name=name)),)


class LookupTool(_ToolNode):
    DESCRIPTION = ("A tool answering from entries written here (an FAQ, a price list): it returns the entries that "
                   "share the most words with the model's query. Separate entries with a blank line.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "name": ("STRING", {"default": "faq_lookup"}),
            "description": ("STRING", {"default": "Look up answers in the FAQ.", "multiline": True}),
            "entries": ("STRING", {"default": "", "multiline": True}),
        }, "optional": _more()}

    def make(self, name, description, entries, tools=None):
        return (chain(tools, lookup_tool(entries, name=name, description=description)),)


class WorkflowAsTool(_ToolNode):
    DESCRIPTION = ("Offer a saved workflow (API format) as one tool: nodes titled 'input:NAME' are its arguments, "
                   "nodes titled 'output:NAME' its results.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "workflow": ("STRING", {"default": "", "multiline": True, "tooltip": (
                "A file name under the home's user/workflows folder, or the workflow's JSON itself.")}),
            "name": ("STRING", {"default": "my_workflow"}),
            "description": ("STRING", {"default": "", "multiline": True}),
        }, "optional": _more()}

    def make(self, workflow, name, description, tools=None):
        home = current_home()
        tool = workflow_tool(load_workflow(workflow, home.user / "workflows"), workflow_runner(home.root),
                             name=name, description=description)
        return (chain(tools, tool),)


class WorkflowRunnerTool(_ToolNode):
    DESCRIPTION = "One tool that runs any saved workflow (API format) of a folder by name, with named inputs."

    @classmethod
    def INPUT_TYPES(cls):
        return {"optional": {"folder": ("STRING", {"default": "workflows",
                                                   "tooltip": "Under the home's user folder."}), **_more()}}

    def make(self, folder="workflows", tools=None):
        home = current_home()
        tool = workflow_runner_tool(confine(home.user, folder or "workflows"), workflow_runner(home.root))
        return (chain(tools, tool),)


def load_workflow(value: str, folder: Path) -> dict[str, Any]:
    text = value.strip()
    if not text.startswith("{"):
        path = confine(folder, text if text.endswith(".json") else f"{text}.json")
        if not path.is_file():
            raise ValueError(f"no workflow file {text!r} in {folder}")
        text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the workflow is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "nodes" in data:
        raise ValueError("the workflow must be in API format (saved with 'Save (API)')")
    return data


NODE_CLASS_MAPPINGS = {
    "CurrentTimeTool": CurrentTimeTool, "CalculatorTool": CalculatorTool, "FileTools": FileTools,
    "HTTPFetchTool": HTTPFetchTool, "PythonCodeTool": PythonCodeTool, "TextSearchTool": TextSearchTool,
    "LookupTool": LookupTool, "WorkflowAsTool": WorkflowAsTool, "WorkflowRunnerTool": WorkflowRunnerTool,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "CurrentTimeTool": "Current Time Tool", "CalculatorTool": "Calculator Tool", "FileTools": "File Tools",
    "HTTPFetchTool": "HTTP Fetch Tool", "PythonCodeTool": "Python Code Tool", "TextSearchTool": "Text Search Tool",
    "LookupTool": "Lookup Tool (FAQ)", "WorkflowAsTool": "Workflow As Tool", "WorkflowRunnerTool": "Workflow Runner Tool",
}
