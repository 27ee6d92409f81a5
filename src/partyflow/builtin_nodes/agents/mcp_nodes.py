"""MCP nodes: the tools of an MCP server for Agent nodes, a resource as text, a prompt as messages.

The server is a name configured in config.toml (`[mcp.servers.NAME]`, where secrets are named, never written), a
URL (streamable HTTP) or a command line (stdio). The tools this pack outputs hold only that configuration and open
a connection for each call, so they survive caching and run wherever the agent runs (see partyflow.tools.mcp).
The SDK is imported when a node runs, not when the pack loads: it takes half a second, which every engine start
would otherwise pay. A connection lives within one node call: the SDK's task-bound cancel scopes are entered and
left in the same task, because an engine runs an async node's whole call as one task (partyflow's executor and
ComfyUI both give each call a task of its own), so the node needs no task of its own.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .common import CATEGORY, LLM_HISTORY, TOOL, chain, code_tools_decision, current_home, require_code_tools

MCP_CATEGORY = f"{CATEGORY}/mcp"
_SERVER_TIP = ("A server name from config.toml ([mcp.servers.NAME]), a URL (streamable HTTP) or a command line "
               "(stdio, e.g. 'uvx mcp-server-fetch').")


if TYPE_CHECKING:
    from partyflow.tools.mcp import MCPServerConfig


def mcp_library() -> ModuleType:
    """`partyflow.tools.mcp`, or an error that says how to install the SDK."""
    try:
        import partyflow.tools.mcp as library
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        if root not in ("mcp", "mcp_types"):  # the SDK ships as both packages; a half-installed one lacks either
            raise
        raise RuntimeError("the MCP nodes need the 'mcp' package: pip install 'partyflow[mcp]'") from None
    return library


def check_server(server: Any = None) -> bool | str:
    """VALIDATE_INPUTS for every MCP node: a missing SDK or an unconfigured server name is refused before the
    workflow runs (exit code 2 on the CLI, a 400 on the server), like an unknown model provider."""
    if not isinstance(server, str):  # linked from another node: known only at run time
        return True
    try:
        library = mcp_library()
        if _is_name(server.strip()):
            library.configured_server(current_home(), server.strip())
        else:
            library.inline_server(server, timeout=60.0)
    except (RuntimeError, ValueError) as exc:  # MCPConfigError is a ValueError
        return str(exc)
    return True


class _ServerChecked:
    @classmethod
    def VALIDATE_INPUTS(cls, server=None):
        return check_server(server)


def server_input() -> dict[str, Any]:
    return {"server": ("STRING", {"default": "", "tooltip": _SERVER_TIP})}


def timeout_input() -> dict[str, Any]:
    return {"timeout": ("FLOAT", {"default": 60.0, "min": 1.0, "max": 86_400.0,
                                  "tooltip": "Seconds each request to an inline server may take (a configured "
                                             "server uses its own 'timeout')."})}


def _is_name(text: str) -> bool:
    return bool(text) and " " not in text and "/" not in text and ":" not in text


def _is_inline_command(server: str) -> bool:
    text = server.strip()
    return not _is_name(text) and not text.startswith(("http://", "https://"))


def resolve_server(server: str, timeout: float = 60.0) -> MCPServerConfig:
    """A configured server by name, else the text as a URL or command line.

    A command line comes from the workflow: it runs in the OS sandbox, and only where the security policy allows
    code-running tools for whoever submitted the prompt (the same rule as the Python Code Tool)."""
    library, text = mcp_library(), server.strip()
    if _is_name(text):
        # a bare word is a configured name; one that is not configured is far more likely misspelt than a
        # command to start, so it gets the error listing the configured servers
        return library.configured_server(current_home(), text)
    if _is_inline_command(text):
        require_code_tools()
    return library.inline_server(text, timeout=timeout)


def _runs_code(inputs: dict[str, Any]) -> bool:
    """`PARTYFLOW_RUNS_CODE` of the MCP nodes: the server refuses a prompt up front when it starts a command."""
    server = inputs.get("server")
    return isinstance(server, str) and _is_inline_command(server)


def _policy_state(server: str = "", **_: Any) -> str:
    """IS_CHANGED of the MCP nodes: for an inline command, the policy's answer (a cached result is not reused
    after the level or setting changed); otherwise constant."""
    if not _is_inline_command(server):
        return ""
    decision = code_tools_decision()
    return f"{decision.allowed}:{decision.reason}"


class MCPTools(_ServerChecked):
    DESCRIPTION = ("Offer the tools of an MCP server to Agent nodes. Each tool call connects to the server; the "
                   "list of tools is read when this node runs.")
    CATEGORY = MCP_CATEGORY
    RETURN_TYPES = (TOOL,)
    RETURN_NAMES = ("tools",)
    FUNCTION = "make"

    IS_CHANGED = staticmethod(_policy_state)
    PARTYFLOW_RUNS_CODE = staticmethod(_runs_code)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": server_input(),
            "optional": {
                "only": ("STRING", {"default": "", "tooltip": "Offer only these tools (comma-separated names as "
                                                              "the server calls them); empty: all."}),
                "prefix": ("STRING", {"default": "", "tooltip": "Put before each tool name, to tell apart tools "
                                                                "of several servers (e.g. 'docs_')."}),
                **timeout_input(),
                "tools": (TOOL, {"tooltip": "More tools to offer alongside these."}),
            },
        }

    async def make(self, server, only="", prefix="", timeout=60.0, tools=None):
        config = resolve_server(server, timeout)
        names = [name for name in only.split(",") if name.strip()] or None
        listed = await mcp_library().load_tools(config, prefix=prefix.strip(), only=names)
        return (chain(tools, listed),)


class MCPResource(_ServerChecked):
    DESCRIPTION = "Read a resource of an MCP server (by URI) as text."
    CATEGORY = MCP_CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "read"

    IS_CHANGED = staticmethod(_policy_state)
    PARTYFLOW_RUNS_CODE = staticmethod(_runs_code)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**server_input(), "uri": ("STRING", {"default": "", "tooltip": "The resource's URI, "
                                                                  "as `partyflow mcp list NAME` shows it."})},
                "optional": timeout_input()}

    async def read(self, server, uri, timeout=60.0):
        if not uri.strip():
            raise ValueError("give the URI of the resource to read")
        return (await _read(resolve_server(server, timeout), uri.strip()),)


class MCPPrompt(_ServerChecked):
    DESCRIPTION = ("Get a prompt of an MCP server, filled with arguments: its text, and its messages as a history "
                   "for Chat or Agent nodes.")
    CATEGORY = MCP_CATEGORY
    RETURN_TYPES = ("STRING", LLM_HISTORY)
    RETURN_NAMES = ("text", "messages")
    FUNCTION = "get"

    IS_CHANGED = staticmethod(_policy_state)
    PARTYFLOW_RUNS_CODE = staticmethod(_runs_code)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**server_input(), "name": ("STRING", {"default": ""}),
                             "arguments": ("STRING", {"default": "{}", "multiline": True,
                                                      "tooltip": "A JSON object of the prompt's arguments."})},
                "optional": timeout_input()}

    async def get(self, server, name, arguments="{}", timeout=60.0):
        prompt = await _prompt(resolve_server(server, timeout), name.strip(), _string_object(arguments))
        return (prompt.text, prompt.messages)


async def _read(config: MCPServerConfig, uri: str) -> str:
    async with mcp_library().connect(config) as connection:
        return await connection.read_resource(uri)


async def _prompt(config: MCPServerConfig, name: str, arguments: dict[str, str]) -> Any:
    async with mcp_library().connect(config) as connection:
        return await connection.get_prompt(name, arguments)


def _string_object(text: str) -> dict[str, str]:
    """Prompt arguments are strings in MCP: numbers and booleans given as JSON are sent as their JSON text."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"the prompt arguments are not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError("the prompt arguments must be a JSON object")
    return {key: item if isinstance(item, str) else json.dumps(item) for key, item in value.items()}


NODE_CLASS_MAPPINGS = {"MCPTools": MCPTools, "MCPResource": MCPResource, "MCPPrompt": MCPPrompt}
NODE_DISPLAY_NAME_MAPPINGS = {"MCPTools": "MCP Tools", "MCPResource": "MCP Resource", "MCPPrompt": "MCP Prompt"}
