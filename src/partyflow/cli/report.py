"""`partyflow report`: the compliance report of a home, as JSON (for tools) or one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from partyflow.cli.common import EXIT_FAILED, EXIT_INVALID, HomeOption, cli_console, target_home, writing

FORMATS = ("json", "html")


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="json or html")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to this file (default stdout)")] = None,
    no_scan: Annotated[bool, typer.Option("--no-scan", help="do not run the security scanner on each pack")] = False,
    home: HomeOption = None,
) -> None:
    """What is installed, where it came from, who installed it, signatures, scans, vulnerabilities, history."""
    err = cli_console(stderr=True)
    if fmt not in FORMATS:
        err.print(f"[bold red]error:[/] --format must be json or html, got {escape(fmt)!r}", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    from partyflow.config import ConfigError
    from partyflow.manager.errors import ManagerError
    from partyflow.manager.report import build_report, render_html, render_json
    from partyflow.store.sqlite import StoreError

    try:
        built = build_report(target_home(ctx, home), scan=not no_scan)
    except (ManagerError, ConfigError, StoreError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    text = render_json(built) if fmt == "json" else render_html(built)
    if output is None:
        typer.echo(text, nl=False)
        return
    with writing(output):
        output.write_text(text, encoding="utf-8")
    err.print(f"wrote the {fmt} report on {len(built.packs)} packs to {escape(str(output))}", highlight=False)
