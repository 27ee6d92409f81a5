"""`partyflow nodes available|outdated|refresh|which|doctor|fix`: the catalog side of `nodes`.

These commands join the `nodes` group defined in cli/nodes.py (imported from cli/main.py for that side effect),
kept apart so catalog, registry and dependency code load only when one of them runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from partyflow.cli.common import EXIT_FAILED, EXIT_INVALID, HomeOption, YesOption, cli_console, print_json
from partyflow.cli.nodes import app

JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


@contextlib.contextmanager
def manager_errors(as_json: bool) -> Iterator[None]:
    """Manager and config errors become one message (or a JSON object) and exit code 2 (refused) or 1."""
    from partyflow.config import ConfigError
    from partyflow.manager.errors import ManagerError

    try:
        yield
    except ManagerError as exc:
        _fail(exc.message, exc.hint, exc.user_error, as_json, list(getattr(exc, "suggestions", ())))
    except (ConfigError, PermissionError) as exc:
        _fail(str(exc), None, True, as_json, [])


def home_of(ctx: typer.Context, home: Path | None) -> Any:
    """The home, or the ComfyUI install chosen with --comfyui / [target] (a TargetHome)."""
    from partyflow.cli.common import target_home

    return target_home(ctx, home)


@app.command("available")
def available(
    ctx: typer.Context,
    match: Annotated[str | None, typer.Argument(help="only packs whose id, title or description has this")] = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="fetch the channels first")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """List packs the catalog channels offer (from the local cache: works offline)."""
    from partyflow.manager import catalog

    with manager_errors(as_json):
        where = home_of(ctx, home)
        if refresh:
            _report_refresh(catalog.refresh(where), as_json=False)
        entries = sorted(catalog.load(where).latest().values(), key=lambda e: e.id.casefold())
    if match:
        key = match.casefold()
        entries = [e for e in entries if key in f"{e.id} {e.title} {e.description}".casefold()]
    if as_json:
        print_json([{"id": e.id, "title": e.title, "version": e.version, "install_type": e.install_type,
                     "channel": e.channel, "reference": e.reference, "author": e.author,
                     "publisher": e.publisher} for e in entries])
        return
    if not entries:
        cli_console(stderr=True).print("no packs available: add channels under [manager] in config.toml and run "
                                   "'partyflow nodes refresh'", markup=False)
        return
    table = Table("id", "title", "version", "type", "channel")
    for e in entries:
        table.add_row(escape(e.id), escape(e.title), e.version or "", e.install_type, e.channel)
    cli_console().print(table)


@app.command("outdated")
def outdated(
    ctx: typer.Context,
    git: Annotated[bool, typer.Option("--git", help="also ask git remotes whether followed branches moved")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """List installed packs with a newer version in a catalog (or, with --git, a newer branch head)."""
    from partyflow.manager import catalog

    with manager_errors(as_json):
        found = catalog.outdated(home_of(ctx, home), check_git=git)
    if as_json:
        print_json([vars(o) for o in found])
        return
    if not found:
        cli_console().print("all packs are up to date")
        return
    table = Table("pack", "installed", "latest", "from")
    for o in found:
        table.add_row(escape(o.name), o.installed, o.latest, escape(o.source))
    cli_console().print(table)


@app.command("refresh")
def refresh(
    ctx: typer.Context,
    yes: YesOption = False,  # uniform --yes (issue 14 item 5): nothing is asked here
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Fetch every catalog channel into the local cache."""
    from partyflow.manager import catalog

    with manager_errors(as_json):
        results = catalog.refresh(home_of(ctx, home))
    _report_refresh(results, as_json)
    if any(results.values()):
        raise typer.Exit(EXIT_FAILED)


@app.command("which")
def which(
    ctx: typer.Context,
    class_types: Annotated[list[str], typer.Argument(help="node class names (a workflow's missing nodes)")],
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Which catalog pack provides each node class (extension-node-map.json, then name patterns)."""
    from partyflow.manager import catalog

    with manager_errors(as_json):
        found = catalog.find_pack_for_nodes(class_types, home_of(ctx, home))
    if as_json:
        print_json({k: (v.id if v else None) for k, v in found.items()})
        return
    for class_type, entry in found.items():
        target = f"{entry.id} ({entry.reference})" if entry else "[yellow]unknown[/]"
        cli_console().print(f"{escape(class_type)}: {target}", highlight=False)


@app.command("doctor")
def doctor(
    ctx: typer.Context,
    include_disabled: Annotated[bool, typer.Option("--all", help="check disabled packs too")] = False,
    timeout: Annotated[float | None, typer.Option(help="seconds one pack may take to import (default 60); for a "
                                                       "ComfyUI install, ComfyUI's whole start (default 300)",
                                                  show_default=False)] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Import each pack in a sandboxed subprocess; report failures, missing dependencies, import time and what it
    tried (installs, writes, network: none of it happens). For a ComfyUI install (--comfyui), start that ComfyUI
    headless in the sandbox and report each pack's import failure from its log."""
    from partyflow.manager.doctor import diagnose

    with manager_errors(as_json):
        where = home_of(ctx, home)
        if getattr(where, "target", None) is not None:
            from partyflow.manager.comfyui_doctor import diagnose_comfyui

            results = diagnose_comfyui(where, timeout=timeout or 300.0)
        else:
            results = diagnose(where, include_disabled=include_disabled, timeout=timeout or 60.0)
    if as_json:
        print_json([r.to_dict() for r in results])
    else:
        table = Table("pack", "state", "import", "nodes", "problem")
        for r in results:
            state = "[green]ok[/]" if r.ok else "[red]failed[/]"
            seconds = f"{r.seconds:.2f}s" if r.seconds is not None else ""
            error = r.error.strip().splitlines()[-1] if r.error else None  # a traceback's last line; --json has all
            problem = "; ".join(filter(None, [error, *r.hints]))
            table.add_row(escape(r.name), state, seconds, str(len(r.node_types)), escape(problem))
        cli_console().print(table if results else "no packs to check")
    if any(not r.ok for r in results):
        raise typer.Exit(EXIT_FAILED)


@app.command("fix")
def fix(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="an installed pack", show_default=False)],
    allow_conflicts: Annotated[bool, typer.Option("--allow-conflicts",
                                                  help="change installed or protected packages if needed")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="accepted for uniformity with the other mutating "
                                                          "commands; fix asks nothing")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Reinstall a pack's Python dependencies."""
    from partyflow.manager.doctor import fix as fix_pack

    with manager_errors(as_json):
        report = fix_pack(name, home_of(ctx, home), allow_conflicts=allow_conflicts)
    if as_json:
        print_json(report.to_dict())
        return
    if not report.requirements:
        cli_console().print(f"{escape(name)} declares no Python dependencies")
        return
    changed = {**report.installed, **{k: v[1] for k, v in report.changed.items()}}
    what = ", ".join(f"{k}=={v}" for k, v in sorted(changed.items())) or "nothing changed"
    cli_console().print(f"[green]reinstalled the dependencies of {escape(name)}[/] ({report.tool}): {escape(what)}",
                    highlight=False)


def _report_refresh(results: dict[str, str | None], as_json: bool) -> None:
    if as_json:
        print_json({name: {"ok": error is None, "error": error} for name, error in results.items()})
        return
    err = cli_console(stderr=True)
    if not results:
        err.print("no channels configured: add [manager] channels = [{name, url, priority}] to config.toml", markup=False)
    for name, error in results.items():
        if error:
            err.print(f"[yellow]channel {escape(name)}: {escape(error)} (keeping the cached copy)[/]",
                      highlight=False)
        else:
            err.print(f"channel {escape(name)}: fetched", highlight=False)


def _fail(message: str, hint: str | None, user_error: bool, as_json: bool, suggestions: list[str]) -> None:
    if as_json:
        print_json({"ok": False, "error": message, "hint": hint, "suggestions": suggestions})
    else:
        extra = f"\n  hint: {escape(hint)}" if hint else ""
        cli_console(stderr=True).print(f"[bold red]error:[/] {escape(message)}{extra}", highlight=False)
    raise typer.Exit(EXIT_INVALID if user_error else EXIT_FAILED)
