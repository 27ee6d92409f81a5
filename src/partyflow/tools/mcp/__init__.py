"""MCP (Model Context Protocol) with the official `mcp` SDK: a client that offers MCP servers' tools to agents,
and a server that offers published workflows as MCP tools (`partyflow.tools.mcp.serve`, imported on use).

    from partyflow.tools.mcp import connect, configured_server, load_tools

    config = configured_server(home, "files")        # [mcp.servers.files] in config.toml
    tools = await load_tools(config)                 # partyflow Tools; each call opens its own connection
    async with connect(config) as connection:        # or one connection for a whole block
        text = await connection.read_resource("notes://readme")
"""

from partyflow.tools.mcp.client import MCPClientError, MCPConnection, Prompt, connect, content_text
from partyflow.tools.mcp.config import (
    MCPConfigError,
    MCPServerConfig,
    configured_server,
    inline_server,
    load_servers,
    parse_server,
)
from partyflow.tools.mcp.tools import (
    bound_tools,
    describe_tool,
    load_tools,
    make_tools,
    tool_name,
    tool_parameters,
    tool_result_text,
)

__all__ = [
    "MCPClientError", "MCPConfigError", "MCPConnection", "MCPServerConfig", "Prompt", "bound_tools",
    "configured_server", "connect", "content_text", "describe_tool", "inline_server", "load_servers", "load_tools",
    "make_tools", "parse_server", "tool_name", "tool_parameters", "tool_result_text",
]
