"""`partyflow nodes`: the node classes this home offers, and the packs that provide them.

`list` and `info` show node classes (or, with a pack flag or a pack's name, packs); install, uninstall, disable,
enable and update change packs through `partyflow.manager.PackManager`, which is imported only by the commands that
need it so `--help` stays fast.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from partyflow.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    HomeOption,
    cli_console,
    home_from,
    open_engine,
    print_json,
    target_home,
    user_errors,
)

if TYPE_CHECKING:
    from partyflow.manager.packs import InstalledPack, OperationResult, PackManager

app = typer.Typer(help="Node classes and node packs.", no_args_is_help=True)


@app.command("list")
def list_nodes(
    ctx: typer.Context,
    category: Annotated[str | None, typer.Option(help="only this category (and its subcategories)")] = None,
    installed: Annotated[bool, typer.Option("--installed", help="list installed packs instead of classes")] = False,
    disabled: Annotated[bool, typer.Option("--disabled", help="list disabled packs only")] = False,
    available: Annotated[bool, typer.Option("--available", help="list packs the catalogs offer")] = False,
    outdated: Annotated[bool, typer.Option("--outdated", help="list installed packs with a newer version")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    home: HomeOption = None,
) -> None:
    """List node classes by category (and any pack that failed to load), or packs with a pack flag."""
    if available or outdated:
        from partyflow.cli import nodes_catalog

        if available:
            nodes_catalog.available(ctx, None, refresh=False, as_json=as_json, home=home)
        else:
            nodes_catalog.outdated(ctx, git=False, as_json=as_json, home=home)
        return
    if installed or disabled or _acts_on_comfyui(ctx):  # a ComfyUI install's node classes are ComfyUI's to list
        _list_packs(ctx, home, disabled_only=disabled, as_json=as_json)
        return
    with user_errors():
        engine = open_engine(home_from(ctx, home))
    info = engine.object_info()
    rows = sorted((i["category"], name, i["display_name"], i["python_module"]) for name, i in info.items()
                  if category is None or i["category"] == category or i["category"].startswith(category + "/"))
    failed = [r for r in engine.pack_results if not r.ok]
    engine.close()
    if as_json:
        print_json([{"category": c, "class_type": n, "display_name": d, "module": m} for c, n, d, m in rows])
        return
    table = Table("category", "class_type", "display name", "pack")
    for row in rows:  # names come from packs: text, never rich markup
        table.add_row(*(escape(str(cell)) for cell in row))
    console = cli_console()
    if rows:
        console.print(table)
    elif category is not None:
        cli_console(stderr=True).print(f"no node classes in category {escape(category)!r} "
                                   "(partyflow nodes list shows every category)", highlight=False)
    for result in failed:
        cli_console(stderr=True).print(f"[red]pack {escape(result.name)} failed to load:[/] {escape(str(result.error))}",
                                   highlight=False)


@app.command("info")
def info(
    ctx: typer.Context,
    class_type: Annotated[str, typer.Argument(help="an installed pack's name, or a node's class_type",
                                              show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    home: HomeOption = None,
) -> None:
    """Show an installed pack (source, version, hash), or one node class: inputs, outputs and flags."""
    if _show_pack(ctx, home, class_type, as_json):
        return
    with user_errors():
        engine = open_engine(home_from(ctx, home))
    entry = engine.object_info(class_type).get(class_type)
    known = list(engine.registry)
    engine.close()
    if entry is None:
        close = [n for n in known if class_type.lower() in n.lower()][:5]
        close += _close_packs(ctx, home, class_type)
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        cli_console(stderr=True).print(f"[bold red]error:[/] {escape(f'no node class {class_type!r} and no pack of that name{hint}')}",
                                   highlight=False)
        raise typer.Exit(EXIT_INVALID)
    if as_json:
        print_json(entry)
        return
    console = cli_console()  # everything below comes from the pack's class: printed as text, never as rich markup
    console.print(f"[bold]{escape(entry['display_name'])}[/] ({escape(class_type)}) — {escape(entry['category'])}",
                  highlight=False)
    if entry["description"]:
        console.print(entry["description"], highlight=False, markup=False)
    table = Table("input", "section", "type", "options")
    for section in ("required", "optional"):
        for name, spec in entry["input"].get(section, {}).items():
            kind = spec[0] if isinstance(spec[0], str) else f"COMBO {spec[0][:8]}"
            table.add_row(escape(name), section, escape(str(kind)), escape(str(spec[1])) if len(spec) > 1 else "")
    console.print(table)
    outputs = Table("output", "type", "is list")
    for name, kind, is_list in zip(entry["output_name"], entry["output"], entry["output_is_list"], strict=False):
        outputs.add_row(escape(name), escape(kind), "yes" if is_list else "")
    console.print(outputs)
    flags = [f for f in ("output_node", "deprecated", "experimental") if entry.get(f)]
    if flags:
        console.print("flags: " + ", ".join(flags))


# --- packs -------------------------------------------------------------------------------------------------------

JsonOption = Annotated[bool, typer.Option("--json", help="print the outcome as JSON")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
AllowConflicts = Annotated[bool, typer.Option("--allow-conflicts",
                                              help="install dependencies even if they conflict with installed ones")]
SkipScript = Annotated[bool, typer.Option("--skip-install-script",
                                          help="install without running the pack's install.py")]


@app.command("install")
def install(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="NAME|PATH|URL[@VERSION]", show_default=False,
                                          help="a catalog name, a folder, a .py file, a zip/tar archive or a git URL")],
    name: Annotated[str | None, typer.Option(help="install under this folder name")] = None,
    allow_conflicts: AllowConflicts = False,
    skip_install_script: SkipScript = False,
    isolate: Annotated[bool, typer.Option("--isolate", help="give the pack its own virtual environment and run its "
                                                            "nodes in a worker process of it")] = False,
    force: Annotated[bool, typer.Option("--force", help="install even if the security scan refuses it "  # security policy (issue 6, items 4-5)
                                                        "(recorded in the audit log; not at level strong)")] = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Install a node pack: fetch, check it imports, then activate it atomically."""
    with _manager(ctx, home, as_json) as manager:
        _report(manager.install(target, name=name, allow_conflicts=allow_conflicts,
                                skip_install_script=skip_install_script, isolate=isolate, force=force), as_json)


@app.command("uninstall")
def uninstall(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="an installed pack", show_default=False)],
    yes: YesOption = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Remove a pack (enabled or disabled). The Python packages it brought stay installed."""
    with _manager(ctx, home, as_json) as manager:
        _confirm(yes or as_json, f"Uninstall {name}?")
        _report(manager.uninstall(name), as_json)


@app.command("disable")
def disable(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="an enabled pack", show_default=False)],
    yes: YesOption = False,  # accepted for uniformity: the move is reversible, so nothing is asked
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Move a pack to custom_nodes/.disabled/ (ComfyUI-Manager's convention); it stops loading."""
    with _manager(ctx, home, as_json) as manager:
        _report(manager.disable(name), as_json)


@app.command("enable")
def enable(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="a disabled pack", show_default=False)],
    yes: YesOption = False,  # accepted for uniformity: the move is reversible, so nothing is asked
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Move a disabled pack back into custom_nodes/."""
    with _manager(ctx, home, as_json) as manager:
        _report(manager.enable(name), as_json)


@app.command("update")
def update(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="[NAME[@VERSION]]", show_default=False,
                                               help="the pack to update (or use --all)")] = None,
    all_packs: Annotated[bool, typer.Option("--all", help="update every pack the manager installed")] = False,
    allow_conflicts: AllowConflicts = False,
    skip_install_script: SkipScript = False,
    force: Annotated[bool, typer.Option("--force", help="update even if the security scan refuses the new version "
                                                        "(recorded in the audit log; not at level strong)")] = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Update a pack (git: newest commit of its branch, or VERSION; archives and folders: fetched again)."""
    from partyflow.manager.errors import ManagerError
    from partyflow.manager.sources import split_version

    if (name is None) == (not all_packs):
        _fail(ManagerError("give a pack name or --all (not both)", user_error=True), as_json)
    with _manager(ctx, home, as_json) as manager:
        if name is not None:
            base, version = split_version(name)
            _report(manager.update(base, version=version, allow_conflicts=allow_conflicts,
                                   skip_install_script=skip_install_script, force=force), as_json)
            return
        _confirm(yes or as_json, "Update every installed pack?")
        outcomes = manager.update_all(allow_conflicts=allow_conflicts, skip_install_script=skip_install_script,
                                      force=force)
    failed = [o for o in outcomes if isinstance(o, ManagerError)]
    if as_json:
        print_json([o.to_dict() if not isinstance(o, ManagerError) else _error_dict(o) for o in outcomes])
    else:
        for outcome in outcomes:
            if isinstance(outcome, ManagerError):
                _print_error(outcome)
            else:
                _report(outcome, False)
        if not outcomes:
            cli_console(stderr=True).print("no managed packs to update")
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _list_packs(ctx: typer.Context, home: Path | None, *, disabled_only: bool, as_json: bool) -> None:
    with _manager(ctx, home, as_json, progress=False) as manager:
        manager.recover()
        packs = [p for p in manager.installed() if not (disabled_only and p.enabled)]
        comfyui = getattr(manager.home, "target", None) is not None
    if as_json:
        print_json([_pack_dict(p, comfyui) for p in packs])
        return
    table = Table("pack", "state", "source", "version", "content hash", "installed")
    for pack in packs:
        record = pack.record
        table.add_row(escape(pack.name), "enabled" if pack.enabled else "[yellow]disabled[/]",
                      escape(record.source.location) if record else _unmanaged_text(pack, comfyui),
                      escape(_version_text(pack) or (_identity(pack, comfyui).get("version") or "")), record.content_hash[7:19] if record else "",
                      record.updated_at or record.installed_at if record else "")
    if packs:
        cli_console().print(table)
    else:
        cli_console(stderr=True).print("no packs installed" if not disabled_only else "no disabled packs")


def _acts_on_comfyui(ctx: typer.Context) -> bool:
    """Whether a ComfyUI install was chosen (--comfyui, $PARTYFLOW_COMFYUI or [target]); errors surface later."""
    from partyflow.config import ConfigError
    from partyflow.manager.errors import ManagerError

    obj = ctx.find_root().obj
    if isinstance(obj, dict) and obj.get("comfyui"):
        return True
    try:
        return getattr(target_home(ctx, None), "target", None) is not None
    except (ManagerError, ConfigError):
        return True  # the pack listing reports the error properly


def _identity(pack: InstalledPack, comfyui: bool) -> dict[str, Any]:
    """ComfyUI-Manager's view of a pack (cnr_id, aux_id, version), for ComfyUI targets only."""
    if not comfyui:
        return {}
    from partyflow.manager.comfyui_manager_compat import pack_identity

    return pack_identity(pack.path)


def _pack_dict(pack: InstalledPack, comfyui: bool) -> dict[str, Any]:
    data = pack.to_dict()
    if comfyui:
        data["comfyui_manager"] = _identity(pack, comfyui)
    return data


def _unmanaged_text(pack: InstalledPack, comfyui: bool) -> str:
    identity = _identity(pack, comfyui)
    if identity.get("kind") == "cnr":
        return f"registry: {escape(identity['cnr_id'])} (ComfyUI-Manager)"
    if identity.get("kind") == "nightly":
        return f"git: {escape(identity.get('url') or identity.get('aux_id') or '')} (ComfyUI-Manager)"
    return "[dim](not managed)[/]"


def _show_pack(ctx: typer.Context, home: Path | None, name: str, as_json: bool) -> bool:
    """Print pack info when `name` is an installed pack; False lets `info` fall back to node classes."""
    with _manager(ctx, home, as_json, progress=False) as manager:
        pack = next((p for p in manager.installed() if p.name == name), None)
    if pack is None:
        return False
    if as_json:
        print_json(pack.to_dict())
        return True
    console = cli_console()
    console.print(f"[bold]{escape(pack.name)}[/] ({'enabled' if pack.enabled else 'disabled'}) — {pack.path}",
                  highlight=False)
    record = pack.record
    if record is None:
        console.print("not installed by partyflow: source and version unknown", highlight=False)
        return True
    rows = [("source", f"{record.source.kind}: {record.source.location}"), ("version", _version_text(pack)),
            ("commit", record.commit or ""), ("content hash", record.content_hash),
            ("archive sha256", record.archive_sha256 or ""), ("catalog name", record.catalog or ""),
            ("installed", record.installed_at), ("updated", record.updated_at or ""),
            ("install.py", record.install_script or "")]
    for key, value in rows:
        if value:
            console.print(f"  {key:15} {escape(value)}", highlight=False)
    return True


def _close_packs(ctx: typer.Context, home: Path | None, name: str) -> list[str]:
    import difflib

    with _manager(ctx, home, False, progress=False) as manager:
        names = [p.name for p in manager.installed()]
    return [f"pack {n}" for n in difflib.get_close_matches(name, names, n=3, cutoff=0.6)]


def _version_text(pack: InstalledPack) -> str:
    record = pack.record
    if record is None:
        return ""
    if record.commit:
        return f"{record.version or record.ref_kind or ''} {record.commit[:12]}".strip()
    return record.version or ""


# --- shared plumbing -----------------------------------------------------------------------------------------

def _security_level(ctx: typer.Context) -> str | None:
    """The global --security-level flag, if given.  # security policy (issue 6, items 4-5)"""
    obj = ctx.find_root().obj
    return obj.get("security_level") if isinstance(obj, dict) else None


@contextlib.contextmanager
def _manager(ctx: typer.Context, home: Path | None, as_json: bool, *, progress: bool = True
             ) -> Iterator[PackManager]:
    """A PackManager with rich progress on stderr; manager and config errors become exit codes 1 and 2."""
    from partyflow.config import ConfigError
    from partyflow.manager.errors import ManagerError
    from partyflow.manager.packs import PackManager
    from partyflow.store.sqlite import StoreError

    err = cli_console(stderr=True)
    with _progress(err, enabled=progress and not as_json) as sink:
        try:
            yield PackManager(target_home(ctx, home), progress=sink, security_level=_security_level(ctx))
        except ManagerError as exc:
            _fail(exc, as_json)
        except (ConfigError, StoreError) as exc:
            _fail(ManagerError(str(exc), user_error=True), as_json)


@contextlib.contextmanager
def _progress(console: Console, *, enabled: bool) -> Iterator[Any]:
    """A `sources.Progress` callback drawing one rich task: a spinner per step, a bar while downloading."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn

    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   console=console, transient=True)
    task = bar.add_task("working", total=None)

    def sink(message: str, done: int | None = None, total: int | None = None) -> None:
        bar.update(task, description=escape(message), completed=done or 0, total=total)

    with bar:
        yield sink


def _confirm(skip: bool, question: str) -> None:
    """Ask only a person at a terminal; scripts pass --yes (and without a terminal nobody can answer)."""
    if skip or not sys.stdin.isatty():
        return
    if not typer.confirm(question, default=False, err=True):
        raise typer.Exit(EXIT_INVALID)


def _report(result: OperationResult, as_json: bool) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    err = cli_console(stderr=True)
    for item in result.recovered:
        err.print(f"[yellow]recovered:[/] an interrupted {item.action} of {escape(item.pack)} was {item.outcome}",
                  highlight=False)
    style = "green" if result.changed else "dim"
    cli_console().print(f"[{style}]{escape(result.message)}[/]", highlight=False)
    if result.node_types:
        cli_console().print(f"  nodes: {escape(', '.join(result.node_types))}", highlight=False)


def _error_dict(exc: Any) -> dict[str, Any]:
    return {"ok": False, "error": exc.message, "hint": exc.hint, "pack": exc.pack,
            "suggestions": list(getattr(exc, "suggestions", ()))}


def _print_error(exc: Any) -> None:
    hint = f"\n  hint: {escape(exc.hint)}" if exc.hint else ""
    cli_console(stderr=True).print(f"[bold red]error:[/] {escape(exc.message)}{hint}", highlight=False)


def _fail(exc: Any, as_json: bool) -> None:
    if as_json:
        print_json(_error_dict(exc))
    else:
        _print_error(exc)
    raise typer.Exit(EXIT_INVALID if exc.user_error else EXIT_FAILED)
