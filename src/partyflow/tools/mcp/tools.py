"""MCP tools as partyflow `Tool`s: the schema is the server's input schema, a call returns the result's text.

Two ways to hold them. `load_tools(config)` lists the tools once and returns tools that open a connection for each
call: they hold only the (secret-free) config, so they can be cached as node outputs, pickled and run in any event
loop, at the cost of a connection per call (a process start for stdio servers, about half a second for a Python
server; nothing for HTTP beyond the handshake). A server whose tools keep state between calls needs one
connection: inside `async with connect(config) as connection`, `bound_tools(connection)` gives tools that share it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import mcp_types as types

from partyflow.tools.base import Tool, ToolError
from partyflow.tools.mcp.client import MCPConnection, connect, content_text
from partyflow.tools.mcp.config import MCPServerConfig

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_NAME = 64  # what OpenAI-compatible providers accept for a function name


def tool_result_text(result: types.CallToolResult, tool: str) -> str:
    """A tool result as the text the model reads; an error result raises `ToolError` with the server's words.

    Text blocks are joined; a result with only structured content is sent as its JSON.
    """
    parts = [content_text(block) for block in result.content]
    text = "\n".join(part for part in parts if part)
    if result.is_error:
        raise ToolError(text or f"the MCP tool {tool!r} reported an error without a message")
    if not text and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return text


def tool_name(remote: str, prefix: str = "") -> str:
    """The name the model sees: the prefix and the server's name with characters providers refuse replaced."""
    return _UNSAFE.sub("_", f"{prefix}{remote}")[:MAX_NAME]


def tool_parameters(tool: types.Tool) -> dict[str, Any]:
    """The tool's input schema as a JSON object schema (some servers omit `properties` for no arguments)."""
    schema = dict(tool.input_schema or {})
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return schema


class _PerCallTool:
    """A tool function that connects, calls and disconnects: holds only the config, so it pickles."""

    def __init__(self, config: MCPServerConfig, remote: str) -> None:
        self.config = config
        self.remote = remote

    async def __call__(self, **arguments: Any) -> str:
        async with connect(self.config) as connection:
            result = await connection.call_tool(self.remote, arguments)
        return tool_result_text(result, self.remote)


class _BoundTool:
    """A tool function that calls through an open connection."""

    def __init__(self, connection: MCPConnection, remote: str) -> None:
        self.connection = connection
        self.remote = remote

    async def __call__(self, **arguments: Any) -> str:
        return tool_result_text(await self.connection.call_tool(self.remote, arguments), self.remote)


def make_tools(listed: Iterable[types.Tool], config: MCPServerConfig, *, connection: MCPConnection | None = None,
               prefix: str = "", only: Iterable[str] | None = None) -> list[Tool]:
    """`Tool`s for listed MCP tools, calling through `connection` when given, else connecting per call.

    `only` keeps the named tools (server names); naming one the server does not have is an error, so a typo
    does not silently leave the agent without a tool.
    """
    listed = list(listed)
    wanted = _selection(only, [t.name for t in listed], config.name)
    tools: list[Tool] = []
    seen: dict[str, str] = {}
    for item in listed:
        if wanted is not None and item.name not in wanted:
            continue
        name = tool_name(item.name, prefix)
        if name in seen:
            raise ToolError(f"MCP server {config.name!r}: tools {seen[name]!r} and {item.name!r} both become "
                            f"{name!r}; choose a subset with 'only'")
        seen[name] = item.name
        fn = _BoundTool(connection, item.name) if connection is not None else _PerCallTool(config, item.name)
        description = item.description or item.title or f"The tool {item.name!r} of the MCP server {config.name!r}."
        tools.append(Tool(name=name, description=description, parameters=tool_parameters(item), fn=fn,
                          metadata={"kind": "mcp", "server": config.name, "remote_name": item.name}))
    return tools


async def load_tools(config: MCPServerConfig, *, prefix: str = "", only: Iterable[str] | None = None,
                     ) -> list[Tool]:
    """The server's tools, listed now over a short connection; each call opens its own (see the module doc)."""
    async with connect(config) as connection:
        listed = await connection.list_tools()
    return make_tools(listed, config, prefix=prefix, only=only)


async def bound_tools(connection: MCPConnection, *, prefix: str = "", only: Iterable[str] | None = None,
                      ) -> list[Tool]:
    """The server's tools, calling through `connection`: valid only inside its `connect` block."""
    return make_tools(await connection.list_tools(), connection.config, connection=connection, prefix=prefix,
                      only=only)


def _selection(only: Iterable[str] | None, available: list[str], server: str) -> set[str] | None:
    if only is None:
        return None
    wanted = {name.strip() for name in only if name.strip()}
    if not wanted:
        return None
    unknown = sorted(wanted - set(available))
    if unknown:
        raise ToolError(f"MCP server {server!r} has no tool {', '.join(map(repr, unknown))} "
                        f"(it has: {', '.join(sorted(available)) or 'none'})")
    return wanted


def describe_tool(tool: types.Tool) -> Mapping[str, Any]:
    """A listed tool as plain JSON: name, description, input schema."""
    return {"name": tool.name, "description": tool.description or "", "input_schema": tool_parameters(tool)}
