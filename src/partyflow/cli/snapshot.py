"""`partyflow snapshot save|list|show|diff|restore`: capture a home's packs and Python packages, and bring a
home back to a captured state (ours or a ComfyUI-Manager snapshot file)."""

from __future__ import annotations

import dataclasses
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from partyflow.cli.common import EXIT_FAILED, EXIT_INVALID, HomeOption, YesOption, cli_console, print_json
from partyflow.cli.nodes_catalog import JsonOption, home_of, manager_errors

app = typer.Typer(help="Save, compare and restore the state of a home's node packs.", no_args_is_help=True)
NoPython = Annotated[bool, typer.Option("--no-python", help="leave Python packages out")]


@app.command("save")
def save(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="snapshot name (default: the time)")] = None,
    no_python: NoPython = False,
    yes: YesOption = False,  # uniform --yes (issue 14 item 5): nothing is asked here
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Save the packs (source, version, commit, state, content hash) and the Python packages installed."""
    from partyflow.manager import snapshots

    with manager_errors(as_json):
        path = snapshots.save(home_of(ctx, home), name, python=not no_python)
    if as_json:
        print_json({"ok": True, "path": str(path), "name": path.stem})
    else:
        cli_console().print(f"saved snapshot [bold]{escape(path.stem)}[/] ({path})", highlight=False)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """List saved snapshots."""
    from partyflow.manager import snapshots

    rows = []
    with manager_errors(as_json):
        for path in snapshots.list_snapshots(home_of(ctx, home)):
            try:
                snap = snapshots.load(path)
                rows.append({"name": path.stem, "created": snap.created, "origin": snap.origin,
                             "packs": len(snap.packs), "python": len(snap.python), "path": str(path)})
            except snapshots.SnapshotError as exc:
                rows.append({"name": path.stem, "error": exc.message, "path": str(path)})
    if as_json:
        print_json(rows)
        return
    table = Table("name", "created", "origin", "packs", "python packages")
    for row in rows:
        table.add_row(escape(row["name"]), row.get("created", "[red]unreadable[/]"), row.get("origin", ""),
                      str(row.get("packs", "")), str(row.get("python", "")))
    cli_console().print(table if rows else "no snapshots saved")


@app.command("show")
def show(
    ctx: typer.Context,
    snapshot: Annotated[str, typer.Argument(help="a snapshot name or file", show_default=False)],
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Show a snapshot's packs and Python packages (ComfyUI-Manager snapshot files too)."""
    from partyflow.manager import snapshots

    with manager_errors(as_json):
        snap = snapshots.load(snapshots.locate(home_of(ctx, home), snapshot))
    if as_json:
        print_json(snap.to_dict())
        return
    console = cli_console()
    console.print(f"[bold]{escape(snapshot)}[/] — {snap.origin}, {snap.created or 'no date'}", highlight=False)
    table = Table("pack", "state", "source", "version", "content hash")
    for name, pack in sorted(snap.packs.items()):
        source = pack.source.location if pack.source else (f"registry: {pack.registry_id}" if pack.registry_id
                                                          else "(by hand)")
        version = (pack.commit or "")[:12] or pack.version or ""
        table.add_row(escape(name), "enabled" if pack.enabled else "disabled", escape(source), escape(version),
                      (pack.content_hash or "")[7:19])
    console.print(table)
    console.print(f"{len(snap.python)} Python packages", highlight=False)


@app.command("diff")
def diff(
    ctx: typer.Context,
    before: Annotated[str, typer.Argument(help="a snapshot name or file", show_default=False)],
    after: Annotated[str | None, typer.Argument(help="another one (default: the home as it is now)")] = None,
    no_python: NoPython = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """What changed from one snapshot to another, or to the current state."""
    from partyflow.manager import snapshots

    with manager_errors(as_json):
        where = home_of(ctx, home)
        first = _packs_only(snapshots.load(snapshots.locate(where, before)), no_python)
        second = (_packs_only(snapshots.load(snapshots.locate(where, after)), no_python) if after
                  else snapshots.capture(where, python=not no_python and bool(first.python)))
        delta = snapshots.diff(first, second)
    if as_json:
        print_json(delta.to_dict())
        return
    _print_diff(delta)


@app.command("restore")
def restore(
    ctx: typer.Context,
    snapshot: Annotated[str, typer.Argument(help="a snapshot name or file", show_default=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only show what would change")] = False,
    no_python: NoPython = False,
    allow_conflicts: Annotated[bool, typer.Option("--allow-conflicts",
                                                  help="also change protected packages (torch, numpy, ...)")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Bring the home to a snapshot's state: install, remove, replace, enable and disable packs; pin packages."""
    from partyflow.manager import snapshots

    with manager_errors(as_json):
        where = home_of(ctx, home)
        target = snapshots.load(snapshots.locate(where, snapshot))
        delta = snapshots.diff(snapshots.capture(where, python=not no_python and bool(target.python)),
                               _packs_only(target, no_python))
        if dry_run or delta.empty:
            if as_json:
                print_json({"dry_run": dry_run, **delta.to_dict()})
            else:
                _print_diff(delta)
            return
        if not as_json:
            _print_diff(delta)
        if not yes and sys.stdin.isatty() and not typer.confirm("restore this snapshot?", default=False, err=True):
            raise typer.Exit(EXIT_INVALID)
        result = snapshots.restore(target, where, python=not no_python, allow_conflicts=allow_conflicts)
    if as_json:
        print_json(result.to_dict())
    else:
        console = cli_console()
        for action in result.actions:
            console.print(f"[green]✓[/] {escape(action)}", highlight=False)
        for name, version in result.python_kept.items():
            console.print(f"[yellow]kept protected {escape(name)} {version}[/] (use --allow-conflicts)",
                          highlight=False)
        for problem in result.problems:
            cli_console(stderr=True).print(f"[red]✗[/] {escape(problem)}", highlight=False)
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


def _packs_only(snap: Any, no_python: bool) -> Any:
    """With --no-python the packages are out of the comparison on both sides (not shown as all added/removed)."""
    return dataclasses.replace(snap, python={}) if no_python else snap


def _print_diff(delta: Any) -> None:
    console = cli_console()
    if delta.empty:
        console.print("no differences")
        return
    marks = {"added": "[green]+[/]", "removed": "[red]-[/]", "changed": "[yellow]~[/]", "enabled": "[green]on[/]",
             "disabled": "[yellow]off[/]"}
    for change in delta.packs:
        console.print(f"{marks.get(change.what, '?')} {escape(change.describe())}", highlight=False)
    for name, version in sorted(delta.python_added.items()):
        console.print(f"[green]+[/] {escape(name)}=={version}", highlight=False)
    for name, version in sorted(delta.python_removed.items()):
        console.print(f"[red]-[/] {escape(name)}=={version}", highlight=False)
    for name, (old, new) in sorted(delta.python_changed.items()):
        console.print(f"[yellow]~[/] {escape(name)} {old} -> {new}", highlight=False)
