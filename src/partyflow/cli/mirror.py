"""`partyflow mirror build|serve`: one folder (or one small HTTP server) with a catalog, pack archives and a
PEP 503 index of wheels, made from verified bundles, so machines on a LAN install with the normal commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from partyflow.cli.common import HomeOption, YesOption, cli_console, print_json
from partyflow.cli.keys import JsonOption, failures
from partyflow.cli.nodes_catalog import home_of

app = typer.Typer(help="A local mirror of packs and wheels, built from bundles.", no_args_is_help=True)
DirArg = Annotated[Path, typer.Argument(metavar="DIR", help="the mirror folder", show_default=False)]


@app.command("build")
def build(
    ctx: typer.Context,
    directory: DirArg,
    bundles: Annotated[list[Path], typer.Option("--bundle", "-b", help="a bundle to add (repeatable)",
                                                show_default=False)],
    key: Annotated[str | None, typer.Option("--key", help="sign the mirror's catalog with this key")] = None,
    allow_unsigned: Annotated[bool, typer.Option("--allow-unsigned", help="accept unsigned bundles")] = False,
    yes: YesOption = False,  # uniform --yes (issue 14 item 5): nothing is asked here
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Verify bundles and add their packs and wheels to DIR (catalog, packs/, wheels/, simple/)."""
    from partyflow.manager.mirror import build_mirror

    with failures(as_json):
        result = build_mirror(home_of(ctx, home), directory, bundles, key=key, allow_unsigned=allow_unsigned)
    if as_json:
        print_json({"ok": True, **result.to_dict()})
        return
    console = cli_console()
    console.print(f"mirror {escape(str(directory))}: added {len(result.packs_added)} pack(s) and "
                  f"{len(result.wheels_added)} wheel(s) from {len(result.bundles)} bundle(s)"
                  + (f"; catalog signed by {escape(result.signed_by)}" if result.signed_by else ""), highlight=False)
    console.print("serve it with: partyflow mirror serve " + escape(str(directory)), highlight=False)


@app.command("serve")
def serve(
    directory: DirArg,
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free one)")] = 8000,
    listen: Annotated[bool, typer.Option("--listen", help="listen on all interfaces, not only 127.0.0.1")] = False,
    host: Annotated[str | None, typer.Option("--host", help="listen on this address")] = None,
    verbose: Annotated[bool, typer.Option("--log", help="log each request to stderr")] = False,
) -> None:
    """Serve a mirror folder over plain HTTP (127.0.0.1 unless --listen or --host)."""
    from partyflow.manager.mirror import make_server

    address = host or ("0.0.0.0" if listen else "127.0.0.1")
    with failures(False):
        server = make_server(directory, address, port, quiet=not verbose)
    bound_host, bound_port = server.server_address[:2]
    shown = "127.0.0.1" if bound_host == "0.0.0.0" else bound_host
    base = f"http://{shown}:{bound_port}/"
    sys.stdout.write(f"serving {directory} at {base}\n")
    sys.stdout.write(f"  channel:   [manager] channels = [{{name = \"mirror\", url = \"{base}\"}}]\n")
    sys.stdout.write(f"  wheels:    [manager] index_url = \"{base}simple/\"\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
