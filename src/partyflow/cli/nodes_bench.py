"""`partyflow nodes bench PACK`: import time, memory and per-node execution time of one pack, measured in the
sandbox. Joins the `nodes` group (imported from cli/main.py for that side effect).

Exit codes, for CI: 0 the pack imported and every node that ran succeeded (skipped nodes do not fail it);
1 the import failed, a node raised, or the --workflow given did not run; 2 bad input (unknown pack, missing
workflow file, bad --repeat) or no OS sandbox.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from partyflow.cli.common import EXIT_FAILED, HomeOption, cli_console, print_json
from partyflow.cli.nodes import app
from partyflow.cli.nodes_catalog import JsonOption, home_of, manager_errors


@app.command("bench")
def bench(
    ctx: typer.Context,
    pack: Annotated[str, typer.Argument(help="an installed pack, or a path to a pack folder", show_default=False)],
    workflow: Annotated[Path | None, typer.Option("--workflow", help="a sample workflow to time (default: the "
                                                  "pack's example_workflows/*.json, else generated inputs)",
                                                  show_default=False)] = None,
    repeat: Annotated[int, typer.Option("--repeat", help="runs per node")] = 3,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds the whole benchmark may take")] = 300.0,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Measure a pack in a sandboxed subprocess: import time and memory, and each node's run time on sample
    inputs (JSON schema partyflow-bench/1 with --json). Exit 1 if the import or a node fails."""
    from partyflow.manager.bench import bench_pack

    with manager_errors(as_json):
        report = bench_pack(home_of(ctx, home), pack, workflow=workflow, repeat=repeat, timeout=timeout)
    if as_json:
        print_json(report.to_dict())
    else:
        _print(report)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


def _print(report: Any) -> None:
    console = cli_console()
    imp = report.import_result
    if imp.get("ok"):
        memory = f", +{_mib(imp.get('rss_bytes'))} resident (peak {_mib(imp.get('peak_rss_bytes'))})"
        console.print(f"[bold]{escape(report.pack)}[/] imported in {imp['seconds']:.3f}s{memory}; "
                      f"{len(imp.get('node_types', []))} node(s)", highlight=False)
    else:
        console.print(f"[red]{escape(report.pack)} failed to import:[/] {escape(str(imp.get('error')))}",
                      highlight=False)
    if report.workflow_error:
        console.print(f"[red]the workflow did not run:[/] {escape(report.workflow_error)}", highlight=False)
    elif imp.get("sample_workflow_error"):
        console.print(f"[yellow]the pack's sample workflow did not run here ({escape(imp['sample_workflow_error'])});"
                      " timed generated inputs instead[/]", highlight=False)
    if not report.nodes:
        return
    table = Table("node", "status", "runs", "median", "min", "max", "note")
    for node in report.nodes:
        s = node.get("seconds") or {}
        status = {"ok": "[green]ok[/]", "skipped": "[yellow]skipped[/]"}.get(node["status"], "[red]error[/]")
        table.add_row(escape(node["class_type"]), status, str(node["runs"]), _ms(s.get("median")), _ms(s.get("min")),
                      _ms(s.get("max")), escape(node.get("reason") or ""))
    console.print(table)


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.2f} ms"


def _mib(size: int | None) -> str:
    return "?" if size is None else f"{size / (1024 * 1024):.1f} MiB"
