"""`partyflow backup`: archive a home, check an archive, restore one (verified, swapped in atomically).

Only paths, counts and sizes are printed: config.toml may hold API keys and its content never reaches the screen.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from partyflow.cli.common import EXIT_FAILED, EXIT_INVALID, HomeOption, YesOption, cli_console, print_json

app = typer.Typer(help="Back up and restore a home: packs, manager state, config, user files, the database.",
                  no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="print the outcome as JSON")]


@contextlib.contextmanager
def _errors(as_json: bool) -> Iterator[None]:
    from partyflow.config import ConfigError
    from partyflow.manager.errors import ManagerError
    from partyflow.store.sqlite import StoreError

    try:
        yield
    except ManagerError as exc:
        if as_json:
            print_json({"ok": False, "error": exc.message, "hint": exc.hint})
        else:
            hint = f"\n  hint: {escape(exc.hint)}" if exc.hint else ""
            cli_console(stderr=True).print(f"[bold red]error:[/] {escape(exc.message)}{hint}", highlight=False)
        raise typer.Exit(EXIT_INVALID if exc.user_error else EXIT_FAILED) from None
    except ConfigError as exc:  # e.g. a malformed [target] table
        cli_console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    except (StoreError, OSError) as exc:
        cli_console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None


def _home(ctx: typer.Context, home: Path | None):  # -> Home
    from partyflow.cli.common import target_home

    return target_home(ctx, home)  # the home, or the ComfyUI install chosen with --comfyui


@app.command("create")
def create(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="archive to write (default "
                                                "./partyflow-backup-<time>.tar.gz)")] = None,
    yes: YesOption = False,  # uniform --yes (issue 14 item 5): nothing is asked here
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Archive the home; the database is copied with SQLite's online backup, so a running server may keep going."""
    from partyflow.manager.backup import create_backup

    with _errors(as_json):
        summary = create_backup(_home(ctx, home), output)
    if as_json:
        print_json(summary.to_dict())
        return
    cli_console().print(f"[green]backup written[/]: {escape(str(summary.path))} ({summary.files} files, "
                    f"{summary.bytes / 1e6:.1f} MB{', with the database' if summary.database else ''})",
                    highlight=False)
    cli_console(stderr=True).print(f"not included: {', '.join(summary.excluded)}", style="dim", highlight=False)
    for link in summary.external_links:
        cli_console(stderr=True).print(f"[yellow]not included[/]: {escape(link)} (a link to outside the home)",
                                   highlight=False)


@app.command("verify")
def verify(
    archive: Annotated[Path, typer.Argument(help="a backup archive", show_default=False)],
    as_json: JsonOption = False,
) -> None:
    """Check every file of an archive against its manifest, writing nothing."""
    from partyflow.manager.backup import verify_backup

    with _errors(as_json):
        manifest = verify_backup(archive)
    files = sum(1 for e in manifest["entries"] if e["type"] == "file")
    if as_json:
        print_json({"ok": True, "files": files, "created_at": manifest.get("created_at")})
        return
    cli_console().print(f"[green]backup intact[/]: {files} files, made {escape(str(manifest.get('created_at')))}",
                    highlight=False)


@app.command("restore")
def restore(
    ctx: typer.Context,
    archive: Annotated[Path, typer.Argument(help="a backup archive", show_default=False)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Replace the home with the archive (verified first; models, inputs, outputs and venvs of the home stay).
    Stop a server using the home before restoring."""
    from partyflow.manager.backup import restore_backup

    with _errors(as_json):
        target = _home(ctx, home)
    if target.root.exists() and not (yes or as_json) and sys.stdin.isatty():
        if not typer.confirm(f"Replace {target.root} with the backup?", default=False, err=True):
            raise typer.Exit(EXIT_INVALID)
    with _errors(as_json):
        summary = restore_backup(archive, target)
    if as_json:
        print_json(summary.to_dict())
        return
    cli_console().print(f"[green]restored[/] {summary.files} files into {escape(str(summary.home))} "
                    f"(backup made {escape(summary.created_at)})", highlight=False)
    for name in summary.needs_environment:
        cli_console(stderr=True).print(f"[yellow]isolated pack {escape(name)} has no environment here[/]: reinstall it "
                                   "with 'partyflow nodes install ... --isolate'", highlight=False)
