"""A connection to one MCP server (stdio or streamable HTTP) through the official `mcp` SDK.

`connect(config)` is an async context manager: it starts or reaches the server, runs the handshake, and closes
everything when the block ends. Whatever goes wrong underneath — the process cannot start, exits, never answers,
the URL refuses, a request times out — leaves the block as one `MCPClientError` whose message names the server
and says what happened (with the tail of a stdio server's stderr), within the configured time limits, with the
configured secrets redacted. `MCPClientError` is a `ToolError`, so an agent shows it to the model as the result of
the tool call instead of failing.

The handshake has its own deadline because the SDK's per-request timeout does not bound it (a silent server
makes the SDK retry the handshake); the deadline is lifted once connected, and each request is then bounded by
`config.timeout`.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import anyio
import httpx2
import mcp_types as types
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from partyflow import __version__
from partyflow.llm.redact import redact
from partyflow.tools.base import ToolError
from partyflow.tools.mcp.config import MCPServerConfig, ResolvedServer

STDERR_TAIL_CHARS = 600


class MCPClientError(ToolError):
    """An MCP server could not be reached, failed, or did not answer in time; the message says which and why."""


@dataclass(frozen=True)
class Prompt:
    """A prompt as the server rendered it: its messages as plain `{"role", "content"}` dicts."""

    description: str
    messages: list[dict[str, str]]

    @property
    def text(self) -> str:
        return "\n\n".join(m["content"] for m in self.messages)


class MCPConnection:
    """An open connection; use it only inside the `connect` block that made it."""

    def __init__(self, config: MCPServerConfig, client: Client) -> None:
        self.config = config
        self.client = client

    @property
    def server_name(self) -> str:
        info = self.client.server_info
        return info.name if info is not None else self.config.name

    @property
    def instructions(self) -> str | None:
        return self.client.instructions

    async def list_tools(self) -> list[types.Tool]:
        return await _paged(lambda cursor: self.client.list_tools(cursor=cursor), "tools")

    async def list_resources(self) -> list[types.Resource]:
        return await _paged(lambda cursor: self.client.list_resources(cursor=cursor), "resources")

    async def list_prompts(self) -> list[types.Prompt]:
        return await _paged(lambda cursor: self.client.list_prompts(cursor=cursor), "prompts")

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None) -> types.CallToolResult:
        """The raw result; `is_error` results are returned, not raised (see `tools.result_text`)."""
        return await self._request(f"tool {name!r}", self.client.call_tool(name, dict(arguments or {})))

    async def read_resource(self, uri: str) -> str:
        """The resource as text: text parts as they are, binary parts as a one-line note of their type and size."""
        result = await self._request(f"resource {uri!r}", self.client.read_resource(uri))
        return "\n".join(_contents_text(item) for item in result.contents)

    async def get_prompt(self, name: str, arguments: Mapping[str, str] | None = None) -> Prompt:
        result = await self._request(f"prompt {name!r}", self.client.get_prompt(name, dict(arguments or {})))
        messages = [{"role": m.role, "content": content_text(m.content)} for m in result.messages]
        return Prompt(result.description or "", messages)

    async def _request(self, what: str, request: Any) -> Any:
        """Await one request; an error answer (a JSON-RPC error, such as an unknown resource) becomes ours."""
        try:
            return await request
        except MCPError as exc:
            if _is_transport_failure(exc):
                raise
            raise MCPClientError(f"MCP server {self.config.name!r} refused {what}: {exc.message}") from None


@asynccontextmanager
async def connect(config: MCPServerConfig, *, environ: Mapping[str, str] | None = None,
                  ) -> AsyncIterator[MCPConnection]:
    """Open a connection to the server `config` describes; see the module docstring for what may be raised."""
    resolved = config.resolve(environ)
    stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") if config.transport == "stdio" else None
    body_error: BaseException | None = None
    try:
        with anyio.CancelScope(deadline=anyio.current_time() + config.connect_timeout) as deadline:
            async with AsyncExitStack() as stack:
                client = Client(_transport(resolved, stderr), read_timeout_seconds=config.timeout, cache=None,
                                client_info=types.Implementation(name="partyflow", version=__version__))
                await stack.enter_async_context(client)
                deadline.deadline = math.inf
                try:
                    yield MCPConnection(config, client)
                except BaseException as exc:
                    body_error = exc
                    raise
        if deadline.cancelled_caught:
            raise MCPClientError(_where(config) + f" did not complete the MCP handshake within "
                                 f"{config.connect_timeout:g} s (is it an MCP server? is it stuck?)"
                                 + _stderr_tail(stderr, resolved))
    except MCPClientError:
        raise
    except BaseException as exc:
        failure = _failure(exc)
        if failure is None:
            raise  # a cancellation: not ours to translate
        if failure is body_error and not _is_transport_failure(failure):
            raise failure from failure.__cause__  # the caller's own error (possibly wrapped by the SDK's task group), unchanged
        raise MCPClientError(redact(_where(config) + " " + _describe(failure, config), resolved.secrets)
                             + _stderr_tail(stderr, resolved)) from None
    finally:
        if stderr is not None:
            stderr.close()


def _transport(server: ResolvedServer, stderr: IO[str] | None) -> Any:
    config = server.config
    if config.transport == "stdio" and config.sandbox:
        return _sandboxed_stdio(server, stderr)
    if config.transport == "stdio":
        params = StdioServerParameters(command=config.command or "", args=list(config.args),
                                       env=server.env or None, cwd=config.cwd)
        return stdio_client(params, errlog=stderr)  # type: ignore[arg-type]
    http = httpx2.AsyncClient(headers=server.headers or None, timeout=httpx2.Timeout(
        config.connect_timeout, read=max(config.timeout, 5.0) + 5.0))
    return _closing(streamable_http_client(config.url or "", http_client=http), http)


@asynccontextmanager
async def _sandboxed_stdio(server: ResolvedServer, stderr: IO[str] | None) -> AsyncIterator[Any]:
    """The stdio server in the OS sandbox, with network, its scratch folder a throwaway one of this connection.

    The server may start processes (npx, uvx do); limits: CPU time, file size, open files. Raises
    `SandboxUnavailable` (as an MCPClientError) where there is no sandbox: never started unconfined."""
    from partyflow.security.sandbox import Limits, SandboxError, SandboxSpec, wrap

    config = server.config
    cpu = int(max(config.timeout, config.connect_timeout)) * 4 + 60
    limits = Limits(wall_seconds=math.inf, cpu_seconds=cpu, memory_bytes=None, file_bytes=512 * 1024 * 1024,
                    open_files=1024, processes=True)
    with tempfile.TemporaryDirectory(prefix="partyflow-mcp-") as scratch:
        try:
            argv, env = wrap([config.command or "", *config.args], SandboxSpec(
                scratch=Path(scratch), limits=limits, network=True, proc=True, env=server.env))
        except SandboxError as exc:
            raise MCPClientError(f"MCP server {config.name!r} ({config.target}) must run in the OS sandbox: "
                                 f"{exc}") from None
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=env)
        async with stdio_client(params, errlog=stderr) as streams:  # type: ignore[arg-type]
            yield streams


@asynccontextmanager
async def _closing(transport: Any, http: httpx2.AsyncClient) -> AsyncIterator[Any]:
    """The SDK leaves a client it was given open; this transport closes it after the session ends."""
    async with http, transport as streams:
        yield streams


async def _paged(fetch: Any, field: str) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(1000):  # a server whose cursor never ends cannot hang us
        page = await fetch(cursor)
        items.extend(getattr(page, field))
        cursor = page.next_cursor
        if not cursor:
            break
    return items


def content_text(block: Any) -> str:
    """One content block of a tool result or prompt message as text a model can read."""
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent | types.AudioContent):
        kind = "image" if isinstance(block, types.ImageContent) else "audio"
        return f"[{kind} {block.mime_type}, {len(block.data) * 3 // 4} bytes, not shown]"
    if isinstance(block, types.EmbeddedResource):
        return _contents_text(block.resource)
    if isinstance(block, types.ResourceLink):
        return f"[resource {block.uri}: {block.name}]"
    dump = getattr(block, "model_dump", None)
    return json.dumps(dump(mode="json"), ensure_ascii=False) if callable(dump) else str(block)


def _contents_text(item: Any) -> str:
    if isinstance(item, types.TextResourceContents):
        return item.text
    mime = getattr(item, "mime_type", None) or "binary"
    return f"[{mime} content of {item.uri}, {len(getattr(item, 'blob', '')) * 3 // 4} bytes, not shown]"


def _failure(exc: BaseException) -> BaseException | None:
    """The error that explains a failed connection: the first leaf of an exception group that is not a
    cancellation (the SDK's task groups cancel the caller when a transport task fails)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _failure(inner)
            if found is not None:
                return found
        return None
    if isinstance(exc, anyio.get_cancelled_exc_class() | KeyboardInterrupt | SystemExit | GeneratorExit):
        return None
    return exc


def _is_transport_failure(exc: BaseException) -> bool:
    return isinstance(exc, MCPError) and exc.code in (types.CONNECTION_CLOSED, types.REQUEST_TIMEOUT) or isinstance(
        exc, httpx2.HTTPError | OSError | TimeoutError | anyio.BrokenResourceError | anyio.ClosedResourceError)


def _where(config: MCPServerConfig) -> str:
    return f"MCP server {config.name!r} ({config.target})"


def _describe(exc: BaseException, config: MCPServerConfig) -> str:
    if isinstance(exc, MCPError) and exc.code == types.CONNECTION_CLOSED:
        return "closed the connection (did the server exit or crash?)"
    if isinstance(exc, MCPError) and exc.code == types.REQUEST_TIMEOUT:
        return f"did not answer within {config.timeout:g} s ({exc.message})"
    if isinstance(exc, MCPError):
        return f"answered with an error: {exc.message}"
    if isinstance(exc, FileNotFoundError | PermissionError) and config.transport == "stdio":
        return f"could not be started: {exc.strerror or exc} (is {config.command!r} installed and on PATH?)"
    if isinstance(exc, httpx2.ConnectError):
        return f"cannot be reached: {exc or 'connection refused'}"
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"answered HTTP {exc.response.status_code}"
    if isinstance(exc, httpx2.HTTPError):
        return f"failed over HTTP: {type(exc).__name__}: {exc}"
    if isinstance(exc, TimeoutError):
        return f"did not answer within {config.timeout:g} s"
    return f"failed: {type(exc).__name__}: {exc}"


def _stderr_tail(stderr: IO[str] | None, server: ResolvedServer) -> str:
    if stderr is None:
        return ""
    try:
        stderr.flush()
        stderr.seek(0)
        text = stderr.read()
    except (OSError, ValueError):
        return ""
    tail = text.strip()[-STDERR_TAIL_CHARS:]
    return f"; its last output: {redact(tail, server.secrets)}" if tail else ""
