"""`partyflow nodes stubs`: typed Python stubs of the installed node classes, for writing workflows in code.

Joins the `nodes` group of cli/nodes.py (imported from cli/main.py for that side effect).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from partyflow.cli.common import HomeOption, cli_console, home_from, open_engine, user_errors, writing
from partyflow.cli.nodes import app


@app.command("stubs")
def stubs(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="write the `partyflow_nodes` "
                                         "stub package into this folder (put it on your type checker's path)")],
    home: HomeOption = None,
) -> None:
    """Write typed stubs of every installed node class, so editors complete `wf.<Node>(...)` and type checkers
    catch wrong inputs; run it again after installing or removing packs."""
    from partyflow.builder.stubs import write_stubs

    with user_errors():
        engine = open_engine(home_from(ctx, home))
    try:
        with writing(output):
            package = write_stubs(engine, output)
        count = len(engine.registry)
    finally:
        engine.close()
    cli_console(stderr=True).print(f"wrote stubs for {count} node classes to {package}", markup=False,
                                   highlight=False)
    cli_console().print(f"use: from partyflow_nodes import Workflow   (with {output} on the path)", markup=False,
                        highlight=False)
