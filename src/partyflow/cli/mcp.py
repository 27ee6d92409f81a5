"""`partyflow mcp`: serve published workflows as MCP tools; list the configured MCP servers and their tools."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from partyflow.cli.common import (
    EXIT_INVALID,
    HomeOption,
    consoles,
    home_from,
    open_engine,
    print_json,
    user_errors,
)
from partyflow.config import Home, resolve_home

app = typer.Typer(help="MCP: offer published workflows as MCP tools; inspect configured MCP servers.",
                  no_args_is_help=True)

TOKEN_ENV = "PARTYFLOW_API_TOKEN"
DEFAULT_MCP_PORT = 8190


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="mcp")


@contextlib.contextmanager
def _mcp_errors():
    """Missing SDK, bad config and unreachable servers become one line and exit code 2."""
    _, err = consoles()
    try:
        from partyflow.tools.mcp import MCPClientError, MCPConfigError
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("mcp"):
            raise
        err.print("[bold red]error:[/] " + escape("the MCP commands need the 'mcp' package: pip install 'partyflow[mcp]'"))
        raise typer.Exit(EXIT_INVALID) from None
    try:
        yield
    except (MCPConfigError, MCPClientError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None


@app.command("serve")
def serve(
    ctx: typer.Context,
    transport: Annotated[str, typer.Option("--transport", help="stdio (for a client that starts this command) or "
                                                               "http (streamable HTTP at /mcp)")] = "stdio",
    port: Annotated[int, typer.Option("--port", help="TCP port for http (0 picks a free one)")] = DEFAULT_MCP_PORT,
    listen: Annotated[str, typer.Option("--listen", help="address for http; anything but loopback needs a token")]
    = "127.0.0.1",
    token: Annotated[str | None, typer.Option("--token", envvar=TOKEN_ENV, show_envvar=True,
                                              help="bearer token http clients must send")] = None,
    user: Annotated[str, typer.Option("--user", help="whose saved workflows to offer (user/<user>/workflows)")]
    = "default",
    home: HomeOption = None,
) -> None:
    """Offer the published workflows (extra.partyflow.publish) of this home as MCP tools."""
    _, err = consoles()
    if transport not in ("stdio", "http"):
        err.print("[bold red]error:[/] --transport must be stdio or http")
        raise typer.Exit(EXIT_INVALID)
    if transport == "http" and not token and not _loopback(listen):
        err.print(f"[bold red]error:[/] --listen {escape(listen)} is reachable from other machines; "
                  f"give --token (or ${TOKEN_ENV})")
        raise typer.Exit(EXIT_INVALID)
    if "/" in user or user.startswith("."):
        err.print("[bold red]error:[/] --user must be a plain user name")
        raise typer.Exit(EXIT_INVALID)
    with _mcp_errors():
        from partyflow.tools.mcp.serve import PublishedTools, build_server, serve_http, serve_stdio

    root = resolve_home(home_from(ctx, home))
    with user_errors(), contextlib.redirect_stdout(sys.stderr):  # stdout is the MCP wire; packs may print
        engine = open_engine(root)
    if transport == "http":  # its clients are HTTP clients: code-running tools follow the server rule (issue 10)
        from partyflow.nodes.host import PromptSource

        obj = ctx.find_root().obj
        engine.host.source = PromptSource(over_http=True, loopback=_loopback(listen),
                                          security_level=obj.get("security_level") if isinstance(obj, dict) else None)
    try:
        tools = PublishedTools(engine, Home(root).user / user / "workflows")
        server = build_server(tools)
        if transport == "stdio":
            asyncio.run(serve_stdio(server))
        else:
            def ready(url: str) -> None:
                print(f"partyflow MCP server at {url}", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(serve_http(server, host=listen, port=port, token=token, on_ready=ready,
                                       authenticate=_user_tokens(Home(root))))
    finally:
        engine.close()


def _user_tokens(home: Home) -> Any:
    """With users defined (`partyflow users`), their tokens open the MCP endpoint too: runners and above (issue 17),
    the same identities and refusals as the server's; None while there are none (then only --token guards it)."""
    from partyflow.access import AccessError, AccessStore, Permission

    with AccessStore(home.state_db) as probe:
        if not probe.has_users():
            return None

    def authenticate(token: str) -> str | None:
        with AccessStore(home.state_db) as store:
            try:
                identity = store.authenticate_token(token)
            except AccessError as exc:
                return exc.reason
        return None if identity.allows(Permission.RUN) else f"user {identity.user!r} may not run workflows"

    return authenticate


@app.command("list")
def list_servers(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    home: HomeOption = None,
) -> None:
    """List the MCP servers configured in config.toml (tables mcp.servers.NAME)."""
    out, _ = consoles()
    with _mcp_errors():
        from partyflow.tools.mcp import load_servers

        root = Home(resolve_home(home_from(ctx, home)))
        servers = load_servers(root)
    rows = [{"name": s.name, "transport": s.transport, "target": s.target, "env": sorted(s.env),
             "headers": sorted(s.headers), "timeout": s.timeout} for s in servers.values()]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print(f"No MCP servers configured; add [mcp.servers.NAME] tables to {root.config_file}",
                  highlight=False, markup=False)
        return
    table = Table("name", "transport", "command or URL", "env / headers (names only)")
    for row in rows:
        table.add_row(escape(row["name"]), row["transport"], escape(row["target"]),
                      escape(", ".join(row["env"] + row["headers"])))
    out.print(table)


@app.command("tools")
def server_tools(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="a configured server name, a URL or a command line")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    home: HomeOption = None,
) -> None:
    """Connect to an MCP server and list its tools, resources and prompts."""
    out, _ = consoles()
    with _mcp_errors():
        listing = asyncio.run(_listing(Home(resolve_home(home_from(ctx, home))), name))
    if as_json:
        print_json(listing)
        return
    table = Table("tool", "arguments", "description", title=f"MCP server {escape(listing['server'])}")
    for tool in listing["tools"]:
        schema = tool["input_schema"]
        required = set(schema.get("required", ()))
        arguments = ", ".join(f"{arg}{'' if arg in required else '?'}" for arg in schema.get("properties", {}))
        table.add_row(escape(tool["name"]), escape(arguments), escape(tool["description"]))
    out.print(table)
    for kind, key in (("resources", "uri"), ("prompts", "name")):
        if listing[kind]:
            out.print(f"[bold]{kind}:[/]")
            for item in listing[kind]:
                out.print(f"  {escape(item[key])}  {escape(item.get('description') or '')}", highlight=False)


async def _listing(home: Home, name: str) -> dict[str, Any]:
    from partyflow.tools.mcp import configured_server, connect, describe_tool, inline_server, load_servers

    config = configured_server(home, name) if name in load_servers(home) or _bare(name) else inline_server(name)
    async with connect(config) as connection:
        capabilities = connection.client.server_capabilities
        tools = await connection.list_tools() if capabilities.tools is not None else []
        resources = await connection.list_resources() if capabilities.resources is not None else []
        prompts = await connection.list_prompts() if capabilities.prompts is not None else []
        return {
            "server": config.name, "server_name": connection.server_name, "instructions": connection.instructions,
            "tools": [dict(describe_tool(t)) for t in tools],
            "resources": [{"uri": str(r.uri), "name": r.name, "description": r.description or "",
                           "mime_type": r.mime_type} for r in resources],
            "prompts": [{"name": p.name, "description": p.description or "",
                         "arguments": [a.name for a in p.arguments or []]} for p in prompts],
        }


def _bare(name: str) -> bool:
    return bool(name) and not any(c in name for c in " /:")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = ["app", "register"]
