"""`partyflow audit`: read, verify and export the manager's tamper-evident log."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from partyflow.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    HomeOption,
    YesOption,
    cli_console,
    home_from,
    print_json,
    writing,
)

if TYPE_CHECKING:
    from partyflow.manager.audit import AuditLog

app = typer.Typer(help="The audit log of node-pack changes: show, verify, export.", no_args_is_help=True)


def _fail(message: str, code: int, as_json: bool) -> NoReturn:
    """One error line on stderr, or (--json) one JSON object on stdout; then the exit code (2 refused, 1 failed)."""
    if as_json:
        print_json({"ok": False, "error": message, "hint": None})
    else:
        cli_console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


@contextlib.contextmanager
def _log(ctx: typer.Context, home: Path | None, as_json: bool = False) -> Iterator[AuditLog]:
    from partyflow.config import Home, resolve_home
    from partyflow.manager.audit import AuditError, AuditLog
    from partyflow.store.sqlite import StoreError

    try:
        log = AuditLog(Home(resolve_home(home_from(ctx, home))))
    except StoreError as exc:
        _fail(str(exc), EXIT_INVALID, as_json)
    with log:
        try:
            yield log
        except AuditError as exc:  # a dropped table, an unreadable key or anchor: one clear line, no traceback
            _fail(str(exc), EXIT_INVALID if exc.user_error else EXIT_FAILED, as_json)


@app.command("show")
def show(
    ctx: typer.Context,
    pack: Annotated[str | None, typer.Option(help="only records about this pack")] = None,
    limit: Annotated[int | None, typer.Option(help="only the newest N records", min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    home: HomeOption = None,
) -> None:
    """List audit records, oldest first."""
    with _log(ctx, home) as log:
        entries = log.entries(pack=pack, limit=limit)
    if as_json:
        print_json([asdict(e) for e in entries])
        return
    table = Table("#", "when", "who", "action", "pack", "version", "result", "error")
    for e in entries:
        result = {"ok": "[green]ok[/]", "failed": "[red]failed[/]", "refused": "[yellow]refused[/]"}.get(
            e.result, e.result)
        table.add_row(str(e.id), e.at[:19], escape(e.actor), e.action, escape(e.pack or ""), escape(e.version or ""),
                      result, escape(e.error or ""))
    cli_console().print(table)


@app.command("verify")
def verify(
    ctx: typer.Context,
    anchor: Annotated[Path | None, typer.Option("--anchor", help="also check the records up to this anchor file "
                                                                 "(made by 'partyflow audit anchor')")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    home: HomeOption = None,
) -> None:
    """Check the hash chain and its signed head (and an anchor file); exit code 1 and the first tampered record
    when it is broken."""
    with _log(ctx, home) as log:
        outcome = log.verify(anchor)
    if as_json:
        print_json(asdict(outcome))
    elif outcome.ok:
        signed = (f", signed by audit key {outcome.key_id}" if outcome.signed
                  else " (no signed head yet: written before heads were signed, or empty)")
        cli_console().print(f"[green]audit log intact[/]: {outcome.records} records, head {outcome.head[:16]}{signed}",
                        highlight=False)
        if outcome.anchor:
            cli_console().print(f"[green]anchor ok[/]: {escape(outcome.anchor)}", highlight=False)
    else:
        where = f" at record {outcome.first_bad_id}" if outcome.first_bad_id is not None else ""
        cli_console(stderr=True).print(f"[bold red]audit log tampered[/]{where}: {escape(outcome.reason or '')}",
                                   highlight=False)
    if not outcome.ok:
        raise typer.Exit(EXIT_FAILED)


@app.command("anchor")
def anchor(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="the anchor file to write", show_default=False)],
    yes: YesOption = False,  # uniform --yes (issue 14 item 5): nothing is asked here
    as_json: Annotated[bool, typer.Option("--json", help="print the result (or the error) as JSON")] = False,
    home: HomeOption = None,
) -> None:
    """Write the log's signed head to a file to keep elsewhere (another machine, a ticket, a backup):
    'audit verify --anchor FILE' later proves every record up to it is unchanged, even against someone who
    stole this home's audit key."""
    import json

    with _log(ctx, home, as_json) as log:
        document = log.anchor()
    try:
        out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:  # a missing folder, no permission, a full disk: refused, nothing else changed
        _fail(f"cannot write {out}: {exc.strerror or exc}", EXIT_INVALID, as_json)
    head = document["signed_head"]
    if as_json:
        print_json({"ok": True, "anchor": str(out), "records": document["records"], "last_id": head["last_id"],
                    "head": head["head"]})
        return
    cli_console(stderr=True).print(f"anchored {document['records']} records (newest {head['last_id']}, head "
                               f"{head['head'][:16]}) in {out}", highlight=False)


@app.command("export")
def export(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", help="json or csv")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to this file (default stdout)")] = None,
    home: HomeOption = None,
) -> None:
    """Write every record, with its hashes, as JSON or CSV."""
    if fmt not in ("json", "csv"):
        cli_console(stderr=True).print(f"[bold red]error:[/] --format must be json or csv, got {escape(fmt)!r}",
                                   highlight=False)
        raise typer.Exit(EXIT_INVALID)
    with _log(ctx, home) as log:
        if output is None:
            log.export(sys.stdout, fmt)  # type: ignore[arg-type]
            return
        with writing(output), open(output, "w", encoding="utf-8", newline="") as handle:
            count = log.export(handle, fmt)  # type: ignore[arg-type]
    cli_console(stderr=True).print(f"exported {count} records to {output}", highlight=False, markup=False)
