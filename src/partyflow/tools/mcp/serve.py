"""Published workflows as MCP tools: `partyflow mcp serve` over stdio or streamable HTTP.

A workflow is offered when it is published as a chat model (`extra.partyflow.publish` in the saved file; see
`partyflow.server.published`): the same marker, the same discovery, one tool per published model. The tool takes
the published input as a string argument (named like the input, e.g. `user_prompt`) and answers with the
published output as text. The folder is re-read on every `tools/list`, so saving a workflow publishes it without a
restart. A failed run is an error result (`isError`) carrying the engine's message, never a dropped connection.

This is an interface, like the HTTP server: it translates MCP requests into `Engine.run_async` calls and knows
nothing about what the workflows do. The engine is passed in (anything with `load_workflow`, `object_info` and
`run_async`), so this module does not construct one.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server

from partyflow import __version__
from partyflow.server.published import Catalog, ChatTurn, Publication, PublishError, apply_turn, as_text
from partyflow.tools.mcp.tools import tool_name

logger = logging.getLogger("partyflow.mcp.serve")


class PublishedTools:
    """The MCP handlers for the published workflows under `workflows` (a user's workflows folder)."""

    def __init__(self, engine: Any, workflows: Path) -> None:
        self.engine = engine
        self.workflows = Path(workflows)
        self.catalog = Catalog()

    def publications(self) -> dict[str, Publication]:
        """tool name -> publication; models whose names clash after cleaning keep the first (path order)."""
        found: dict[str, Publication] = {}
        for publication in self.catalog.models(self.workflows).values():
            found.setdefault(tool_name(publication.model), publication)
        return found

    def definition(self, name: str, publication: Publication) -> types.Tool:
        argument = publication.input[1]
        marker = _marker(publication)
        description = str(marker.get("description") or "").strip() or (
            f"Run the partyflow workflow {publication.model!r} ({publication.path.name}) on a text and get its "
            "output as text.")
        schema = {"type": "object", "required": [argument], "additionalProperties": False,
                  "properties": {argument: {"type": "string", "description": str(
                      marker.get("input_description") or f"The text given to the workflow's {argument!r} input.")}}}
        return types.Tool(name=name, title=publication.model, description=description, input_schema=schema)

    async def list_tools(self, ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[self.definition(n, p) for n, p in self.publications().items()])

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        publication = self.publications().get(name)
        return None if publication is None else self.definition(name, publication).input_schema

    async def call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        publication = self.publications().get(params.name)
        if publication is None:
            known = ", ".join(sorted(self.publications())) or "none"
            return _error(f"no published workflow is called {params.name!r} (published: {known})")
        argument = publication.input[1]
        value = (params.arguments or {}).get(argument)
        if not isinstance(value, str):
            return _error(f"the argument {argument!r} is required and must be a string")
        try:
            return _text(await self.run(publication, value))
        except WorkflowError as exc:
            return _error(str(exc))

    async def run(self, publication: Publication, text: str) -> str:
        """Run the published workflow on `text`; its output as text, or `WorkflowError` saying what failed."""
        from partyflow.engine.engine import PromptValidationError  # the engine is only needed when serving

        try:
            prompt = apply_turn(publication, self.engine.load_workflow(publication.document), ChatTurn(text, []),
                                self._input_names)
        except (PublishError, ValueError) as exc:
            raise WorkflowError(f"{publication.path.name} cannot be run: {exc}") from None
        node_id, index = publication.output
        try:
            result = await self.engine.run_async(prompt, prompt_id=str(uuid.uuid4()), outputs=[node_id])
        except PromptValidationError as exc:
            raise WorkflowError(f"{publication.path.name} failed validation: {exc}") from None
        if not result.ok:
            failure = result.error
            where = f" in node {failure.node_id} ({failure.class_type})" if failure and failure.node_id else ""
            message = f"{failure.exception_type}: {failure.message}" if failure else "interrupted"
            raise WorkflowError(f"the workflow {publication.model!r} {result.status}{where}: {message}")
        try:
            return as_text(result.output(node_id, index))
        except (KeyError, IndexError):
            raise WorkflowError(f"output {index} of node {node_id} produced nothing") from None

    def _input_names(self, class_type: str) -> Iterable[str]:
        info = self.engine.object_info(class_type).get(class_type, {})
        return [name for section in info.get("input", {}).values() for name in section]


class WorkflowError(RuntimeError):
    """A published workflow could not run or failed; the message is the tool's error result."""


def build_server(tools: PublishedTools) -> Server[Any]:
    return Server("partyflow", version=__version__, title="partyflow published workflows",
                  instructions="Each tool runs a partyflow workflow on the text you give it and returns its output.",
                  on_list_tools=tools.list_tools, on_call_tool=tools.call_tool,
                  get_tool_input_schema=tools.input_schema)


async def serve_stdio(server: Server[Any]) -> None:
    """Serve one client over this process's stdin/stdout until it closes them (stray prints go to stderr)."""
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


async def serve_http(server: Server[Any], *, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                     on_ready: Callable[[str], None] | None = None,
                     authenticate: Callable[[str], str | None] | None = None) -> None:
    """Serve streamable HTTP at `http://host:port/mcp` until cancelled; `on_ready(url)` once it accepts.

    The socket is bound before `on_ready` runs, so a caller told the URL can connect at once (port 0 picks a free
    port). With `token`, every request must send `Authorization: Bearer <token>`; with `authenticate` (the home's
    user tokens), a bearer token it accepts (it returns None, or why not) works too.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    app: Any = server.streamable_http_app(host=host)
    if token or authenticate is not None:
        app = _bearer(app, token, authenticate)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    bound = sock.getsockname()[1]
    if on_ready is not None:
        on_ready(f"http://{f'[{host}]' if ':' in host else host}:{bound}/mcp")
    await uvicorn.Server(config).serve(sockets=[sock])


def _bearer(app: Any, token: str | None, authenticate: Callable[[str], str | None] | None = None
            ) -> Callable[..., Awaitable[None]]:
    """An ASGI wrapper refusing HTTP requests without an accepted bearer token (compared in constant time)."""
    expected = f"Bearer {token}".encode() if token else None

    def refusal(sent: bytes) -> str | None:
        if expected is not None and hmac.compare_digest(sent, expected):
            return None
        scheme, _, offered = sent.decode("latin-1").partition(" ")
        if authenticate is not None and scheme.lower() == "bearer" and offered.strip():
            return authenticate(offered.strip())
        return "missing or wrong bearer token"

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            reason = refusal(dict(scope.get("headers") or []).get(b"authorization", b""))
            if reason is not None:
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": json.dumps({"error": reason}).encode()})
                return
        await app(scope, receive, send)

    return guarded


def _marker(publication: Publication) -> Mapping[str, Any]:
    extra = publication.document.get("extra") or {}
    marker = (extra.get("partyflow") or {}).get("publish") if isinstance(extra, Mapping) else None
    return marker if isinstance(marker, Mapping) else {}


def _text(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)
