"""`partyflow scan PATH|PACK` and `partyflow vulndb import FILE`: the security scanner from the command line.

Exit codes are part of the interface for CI pipelines: 0 when no finding is at or above `--fail-on`, 1 when one is,
2 when the input was refused (no such path or pack, a corrupt OSV file).
"""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Annotated

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

__all__ = ["register", "vulndb_app"]

vulndb_app = typer.Typer(help="The offline vulnerability database (OSV) the scanner checks dependencies against.",
                         no_args_is_help=True)


class Format(enum.StrEnum):
    table = "table"
    json = "json"
    sarif = "sarif"


class FailOn(enum.StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "dim"}


def scan_command(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="PATH|PACK", show_default=False,
                                          help="a pack folder, a file (.py, requirements.txt, .whl...) or the name "
                                               "of an installed pack")],
    output_format: Annotated[Format, typer.Option("--format", "-f", help="table, json or sarif")] = Format.table,
    fail_on: Annotated[FailOn, typer.Option("--fail-on", help="exit 1 when a finding is at or above this "
                                                              "severity")] = FailOn.high,
    no_bandit: Annotated[bool, typer.Option("--no-bandit", help="skip bandit's checks")] = False,
    sarif: Annotated[Path | None, typer.Option("--sarif", metavar="FILE", help="also write the findings as SARIF "
                                               "2.1.0 to FILE (for code-scanning uploads in CI)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the same as --format json")] = False,
    home: HomeOption = None,
) -> None:
    """Scan a node pack without importing or running it; findings carry rule, severity, file:line and why."""
    from partyflow.security.scanner import ScanError, ScanOptions, Severity, VulnDbError, scan, to_sarif

    err = cli_console(stderr=True)
    try:
        report = scan(target, home=home_from(ctx, home), options=ScanOptions(use_bandit=not no_bandit))
    except (ScanError, VulnDbError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    if sarif is not None:  # written before the exit code is decided, so CI uploads it on failure too
        with writing(sarif):
            sarif.write_text(json.dumps(to_sarif(report, base=Path.cwd()), indent=2) + "\n", encoding="utf-8")
    if as_json or output_format is Format.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    elif output_format is Format.sarif:
        sys.stdout.write(json.dumps(to_sarif(report, base=Path.cwd()), indent=2) + "\n")
    else:
        _table(report)
    if report.at_or_above(Severity.parse(fail_on.value)):
        raise typer.Exit(EXIT_FAILED)


def _table(report) -> None:  # noqa: ANN001 - ScanReport, imported lazily
    console = cli_console()
    if report.findings:
        table = Table("severity", "rule", "location", "finding")
        for finding in report.findings:
            label = finding.severity.label
            table.add_row(f"[{_STYLE[label]}]{label}[/]", escape(f"{finding.rule_id} {finding.rule_name}"),
                          escape(finding.location), escape(finding.message))
        console.print(table)
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n) or "no findings"
    tools = ", ".join(f"{k} {v}" for k, v in report.tools.items())
    console.print(f"{escape(report.target)}: {report.files_scanned} files, {counts} ({tools}; "
                  f"{report.seconds:.2f}s)", highlight=False)
    for skipped in report.skipped[:10]:
        cli_console(stderr=True).print(f"[dim]not analysed: {escape(skipped.path)} ({escape(skipped.reason)})[/]",
                                   highlight=False)


@vulndb_app.command("import")
def vulndb_import(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(metavar="FILE", show_default=False,
                                           help="an OSV export: the PyPI all.zip, a folder of .json records, or "
                                                "one .json file")],
    yes: YesOption = False,  # uniform --yes (issue 14 item 5): nothing is asked here
    as_json: Annotated[bool, typer.Option("--json", help="print the result (or the error) as JSON")] = False,
    home: HomeOption = None,
) -> None:
    """Replace the home's vulnerability database with an OSV export (validated first; nothing changes on error)."""
    from partyflow.config import Home, resolve_home
    from partyflow.security.scanner import VulnDbError, import_osv

    target_home = Home(resolve_home(home_from(ctx, home)))
    try:
        result = import_osv(source, target_home)
    except VulnDbError as exc:
        unchanged = "nothing was imported; the previous database (if any) is unchanged"
        if as_json:
            print_json({"ok": False, "error": str(exc), "hint": unchanged})
        else:
            cli_console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}\n  {unchanged}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    if as_json:
        print_json({"ok": True, "records": result.records, "pypi_records": result.pypi_records,
                    "packages": result.packages, "path": str(result.path)})
        return
    cli_console().print(f"imported {result.pypi_records} PyPI records for {result.packages} packages "
                    f"({result.records} records read) into {escape(str(result.path))}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("scan")(scan_command)
    app.add_typer(vulndb_app, name="vulndb")
