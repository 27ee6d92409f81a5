"""`partyflow env list|diff|promote`: named environments (dev, test, prod) and moving a tested set of packs
between them.

Exit codes, for pipelines: `list` 0; `diff` 0 when the environments match, 1 when they drift, 2 on bad input;
`promote` 0 when promoted (or planned, or already in place), 1 when a change or a health check failed and the
target was rolled back, 2 when the promotion was refused before anything changed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from partyflow.cli.common import EXIT_FAILED, HomeOption, cli_console, home_from, print_json
from partyflow.cli.nodes_catalog import JsonOption, manager_errors

app = typer.Typer(help="Named environments (dev, test, prod): list them, find drift, promote packs.",
                  no_args_is_help=True)
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """List the environments config.toml's [environments.NAME] tables define."""
    from partyflow.manager.environments import environments

    with manager_errors(as_json):
        found = environments(home_of(ctx, home))
    if as_json:
        print_json([env.to_dict() for env in found.values()])
        return
    if not found:
        cli_console(stderr=True).print("no environments configured: add [environments.NAME] tables with home = "
                                       "\"PATH\" or comfyui = \"PATH\" to config.toml", markup=False)
        return
    table = Table("name", "kind", "path", "security level", "trusted keys", "signed only")
    for env in found.values():
        path = escape(str(env.path)) + ("" if env.path.is_dir() else " [red](missing)[/]")
        signed = "default" if env.require_signed is None else ("yes" if env.require_signed else "no")
        table.add_row(escape(env.name), env.kind, path, env.security_level or "(its own)",
                      ", ".join(env.trusted_keys) or "(its keyring)", signed)
    cli_console().print(table)


@app.command("diff")
def diff(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(metavar="A", help="an environment", show_default=False)],
    b: Annotated[str, typer.Argument(metavar="B", help="another environment", show_default=False)],
    python: Annotated[bool, typer.Option("--python", help="also compare the Python packages installed in each "
                                                          "environment's interpreter")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Drift between two environments: packs missing on either side, different content, version, enabled state
    or declared requirements. Exit code 0: the same; 1: they differ."""
    from partyflow.manager import environments as envs

    with manager_errors(as_json):
        where = home_of(ctx, home)
        first, second = envs.environment(where, a), envs.environment(where, b)
        drift = envs.diff(envs.state(a, envs.open_environment(first), python=python),
                          envs.state(b, envs.open_environment(second), python=python))
    if as_json:
        print_json(drift.to_dict())
    else:
        _print_drift(drift)
    if drift.different:
        raise typer.Exit(EXIT_FAILED)


@app.command("promote")
def promote(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="SNAPSHOT", show_default=False,
                                          help="a snapshot file, or env:NAME for an environment's current state")],
    to: Annotated[str, typer.Option("--to", help="the environment to promote into", show_default=False)],
    smoke_workflow: Annotated[Path | None, typer.Option("--smoke-workflow", metavar="FILE",
                                                        help="a workflow to run headless as a health check")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="verify, plan and scan only; change nothing")] = False,
    import_timeout: Annotated[float, typer.Option(help="seconds one pack may take to import in the health "
                                                       "check")] = 60.0,
    smoke_timeout: Annotated[float, typer.Option(help="seconds the smoke workflow may run")] = 300.0,
    yes: YesOption = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Bring an environment to a snapshot: verify its signature, scan, apply all or nothing, run health checks,
    roll back if they fail. Exit code 0: promoted; 1: rolled back; 2: refused (nothing changed)."""
    from partyflow.manager.promotion import promote as run_promotion

    console = cli_console(stderr=True)
    step = (lambda message: console.print(f"[dim]… {escape(message)}[/]", highlight=False)) if not as_json \
        else (lambda message: None)

    def confirm(report: Any) -> bool:
        if yes or as_json or not sys.stdin.isatty():
            return True
        _print_plan(report)
        return typer.confirm(f"apply these {len(report.changes)} change(s) to {report.target}?", default=False,
                             err=True)

    with manager_errors(as_json):
        report = run_promotion(home_of(ctx, home), source, to, smoke_workflow=smoke_workflow, dry_run=dry_run,
                               import_timeout=import_timeout, smoke_timeout=smoke_timeout, step=step,
                               confirm=confirm)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


def home_of(ctx: typer.Context, home: Path | None) -> Any:
    """The partyflow home whose config.toml defines the environments. Never a ComfyUI target (`--comfyui`,
    [target]): an environment names its own ComfyUI, and the command acts on environments, not on the target."""
    from partyflow.config import Home, resolve_home

    return Home(resolve_home(home_from(ctx, home)))


# ---- printing ----------------------------------------------------------------------------------------------

_LABELS = {"content_hash": "content", "enabled": "state"}


def _print_drift(drift: Any) -> None:
    console = cli_console()
    if not drift.different:
        console.print(f"{escape(drift.a)} and {escape(drift.b)} match", highlight=False)
        return
    for name in drift.only_in_a:
        console.print(f"[red]-[/] {escape(name)}: only in {escape(drift.a)}", highlight=False)
    for name in drift.only_in_b:
        console.print(f"[green]+[/] {escape(name)}: only in {escape(drift.b)}", highlight=False)
    for change in drift.changed:
        parts = []
        for field_name, values in change["fields"].items():
            left, right = values["a"], values["b"]
            if field_name == "content_hash":
                left, right = (left or "")[7:19], (right or "")[7:19]
            elif field_name == "enabled":
                left, right = ("enabled" if left else "disabled"), ("enabled" if right else "disabled")
            elif field_name == "requirements":
                left, right = ", ".join(left) or "none", ", ".join(right) or "none"
            parts.append(f"{_LABELS.get(field_name, field_name)} {left} -> {right}")
        console.print(f"[yellow]~[/] {escape(change['name'])}: {escape('; '.join(parts))}", highlight=False)
    python = drift.python
    for name, version in python.get("only_in_a", {}).items():
        console.print(f"[red]-[/] python {escape(name)}=={escape(version)}", highlight=False)
    for name, version in python.get("only_in_b", {}).items():
        console.print(f"[green]+[/] python {escape(name)}=={escape(version)}", highlight=False)
    for name, values in python.get("changed", {}).items():
        console.print(f"[yellow]~[/] python {escape(name)} {escape(values['a'])} -> {escape(values['b'])}",
                      highlight=False)


def _print_plan(report: Any) -> None:
    console = cli_console()
    signature = report.signature or {}
    signed = f"signed by {signature.get('key')} ({signature.get('key_id')})" if signature.get("state") == "signed" \
        else "unsigned"
    console.print(f"promote {escape(report.source)} -> [bold]{escape(report.target)}[/] "
                  f"(security level {report.security_level}; {escape(signed)})", highlight=False)
    if not report.changes:
        console.print("  no changes")
    for change in report.changes:
        console.print(f"  {escape(change.describe())}", highlight=False)
    for check in report.checks:
        signature = check.get("signature", {}).get("state", "?")
        console.print(f"  [green]✓[/] {escape(check['pack'])}: {escape(signature)}; "
                      f"{escape(str(check.get('scan_decision', '')))}", highlight=False)


def _print_report(report: Any) -> None:
    console, err = cli_console(), cli_console(stderr=True)
    for line in report.recovered:
        err.print(f"[yellow]recovered:[/] {escape(line)}", highlight=False)
    if report.status == "planned":
        _print_plan(report)
        console.print("dry run: nothing was changed")
        return
    if report.status == "unchanged":
        console.print(f"{escape(report.target)} already matches {escape(report.source)}", highlight=False)
        return
    for line in report.applied:
        console.print(f"[green]✓[/] {escape(line)}", highlight=False)
    for entry in report.health.get("imports", []):
        if not entry["ok"]:
            err.print(f"[red]✗[/] {escape(entry['name'])} does not import", highlight=False)
    if report.status == "promoted":
        console.print(f"[green]promoted[/] {escape(report.source)} to {escape(report.target)} "
                      f"({len(report.applied)} change(s); previous state saved as "
                      f"{escape(str(report.before_snapshot))})", highlight=False)
        return
    err.print(f"[bold red]rolled back:[/] {escape(report.reason or '')}", highlight=False)
    rollback = report.rollback or {}
    if rollback.get("exact"):
        err.print(f"{escape(report.target)} is back to its previous state", highlight=False)
    for problem in rollback.get("problems", []):
        err.print(f"[red]rollback problem:[/] {escape(problem)} (restore {escape(str(report.before_snapshot))} "
                  "with 'partyflow snapshot restore')", highlight=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="env")

