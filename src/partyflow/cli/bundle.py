"""`partyflow bundle create|inspect|verify|install`: signed offline bundles of packs and their wheels."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from partyflow.cli.common import EXIT_INVALID, HomeOption, YesOption, cli_console, print_json
from partyflow.cli.keys import JsonOption, KeyOption, failures
from partyflow.cli.nodes_catalog import home_of

app = typer.Typer(help="Offline bundles: packs and every wheel they need, signed, for air-gapped machines.",
                  no_args_is_help=True)
BundleArg = Annotated[Path, typer.Argument(metavar="BUNDLE.pfb", help="a bundle file", show_default=False)]
AllowUnsigned = Annotated[bool, typer.Option("--allow-unsigned", help="accept a bundle without a signature")]


@contextlib.contextmanager
def _steps(enabled: bool) -> Iterator[Any]:
    """A progress callback showing the current step on stderr (nothing when printing JSON)."""
    if not enabled:
        yield lambda message: None
        return
    with cli_console(stderr=True).status("working") as status:
        yield lambda message: status.update(escape(message))


@app.command("create")
def create(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="the bundle file to write (.pfb)",
                                                show_default=False)] = None,
    catalog: Annotated[Path | None, typer.Option("--catalog", help="a build catalog (YAML/JSON): bundle every pack "
                                                                  "it lists (needs --out and --platform)",
                                                 show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", help="with --catalog: the folder the bundle is written to "
                                                          "(its .partyflow-build/ cache makes reruns resume)",
                                             show_default=False)] = None,
    index_url: Annotated[str | None, typer.Option("--index-url", help="with --catalog: the package index wheels "
                                                                      "come from (default: [manager] index_url)")]
    = None,
    find_links: Annotated[list[str] | None, typer.Option("--find-links", help="with --catalog: a folder or URL of "
                                                         "wheels (repeatable)")] = None,
    packs: Annotated[str | None, typer.Option("--packs", help="comma-separated catalog names, folders, archives or "
                                                              "git URLs (each with an optional @VERSION)")] = None,
    snapshot: Annotated[str | None, typer.Option("--snapshot", help="bundle a snapshot's packs (a name or file); "
                                                                    "its Python pins constrain the wheels")] = None,
    platform: Annotated[list[str] | None, typer.Option(
        "--platform", help="pip platform tag of the target (repeatable; default: this machine's)")] = None,
    python: Annotated[str | None, typer.Option("--python", "--python-version",
                                               help="target Python version, e.g. 3.11")] = None,
    key: KeyOption = None,
    unsigned: Annotated[bool, typer.Option("--unsigned", help="write an unsigned bundle")] = False,
    sequence: Annotated[int | None, typer.Option("--sequence", help="the replay-protection number (default: one "
                                                                    "above the key's last)")] = None,
    yes: YesOption = False,  # uniform --yes (issue 14 item 5): nothing is asked here
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Fetch packs and download their wheels for the target platform into one signed bundle.

    With --catalog, every pack of a build catalog (docs/manager.md) and a wheelhouse for each --platform and
    --python-version (wheels this machine could not install included) go into OUT/<catalog>-py<X.Y>-<platforms>.pfb;
    a rerun after an interruption reuses what was already fetched and verified."""
    from partyflow.manager.bundles import create_bundle

    names = [p.strip() for p in (packs or "").split(",") if p.strip()]
    platforms = [t.strip() for item in platform or () for t in item.split(",") if t.strip()]
    if catalog is not None:
        _create_from_catalog(ctx, catalog, out, output, names, snapshot, platforms, python, key, unsigned, sequence,
                             index_url, find_links or [], as_json, home)
        return
    if output is None:
        _usage_error("give --output FILE.pfb (or --catalog FILE with --out DIR)", as_json)
    with failures(as_json), _steps(not as_json) as progress:
        opened = create_bundle(home_of(ctx, home), output, packs=names, snapshot=snapshot, platforms=platforms,
                               python=python, key=key, unsigned=unsigned, sequence=sequence, progress=progress)
    if as_json:
        print_json({"ok": True, **opened.summary()})
        return
    m = opened.manifest
    signer = f"signed by {m.signer_name} ({m.signer}), sequence {m.sequence}" if m.signer else "UNSIGNED"
    cli_console().print(f"wrote [bold]{escape(str(output))}[/]: {len(m.packs)} pack(s), {len(m.wheels)} wheel(s) for "
                    f"{escape(', '.join(m.target.platforms))} / Python {m.target.python}; {escape(signer)}",
                    highlight=False)


def _usage_error(message: str, as_json: bool) -> None:
    if as_json:
        print_json({"ok": False, "error": message, "reason": "usage"})
    else:
        cli_console(stderr=True).print(f"[red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(EXIT_INVALID)


def _create_from_catalog(ctx: typer.Context, catalog: Path, out: Path | None, output: Path | None, names: list[str],
                         snapshot: str | None, platforms: list[str], python: str | None, key: str | None,
                         unsigned: bool, sequence: int | None, index_url: str | None, find_links: list[str],
                         as_json: bool, home: Path | None) -> None:
    from partyflow.manager.bundle_build import build_from_catalog

    if names or snapshot or output is not None:
        _usage_error("--catalog builds from the catalog alone: leave out --packs, --snapshot and --output "
                     "(the bundle is written into --out DIR)", as_json)
    if out is None:
        _usage_error("--catalog needs --out DIR, the folder the bundle is written to", as_json)
    if not platforms or not python:
        _usage_error("--catalog needs the target: --platform TAG (repeatable) and --python-version X.Y", as_json)
    assert out is not None and python is not None
    with failures(as_json), _steps(not as_json) as progress:
        result = build_from_catalog(home_of(ctx, home), catalog, out, platforms=platforms, python=python, key=key,
                                    unsigned=unsigned, sequence=sequence, index_url=index_url,
                                    find_links=find_links, progress=progress)
    if as_json:
        print_json({"ok": True, **result.to_dict()})
        return
    m = result.bundle.manifest
    signer = f"signed by {m.signer_name} ({m.signer}), sequence {m.sequence}" if m.signer else "UNSIGNED"
    cli_console().print(f"wrote [bold]{escape(str(result.bundle.path))}[/]: {len(m.packs)} pack(s), "
                        f"{len(m.wheels)} wheel(s) for {escape(', '.join(m.target.platforms))} / Python "
                        f"{m.target.python}; {escape(signer)}", highlight=False)
    if result.packs_reused or result.wheels_reused:
        cli_console().print(f"[dim]reused from an earlier build: {len(result.packs_reused)} pack(s), "
                            f"{len(result.wheels_reused)} wheel(s)[/]", highlight=False)


@app.command("inspect")
def inspect(ctx: typer.Context, bundle: BundleArg, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Show a bundle's manifest: signer, target, packs and wheels (does not hash the files; see verify)."""
    from partyflow.manager.bundles import open_bundle

    with failures(as_json):
        opened = open_bundle(bundle, home_of(ctx, home))
    summary = opened.summary()
    if as_json:
        print_json(summary)
        return
    console = cli_console()
    m = opened.manifest
    who = summary["signer"]
    trust = ("[green]trusted[/]" if who["trusted"] else
             f"[red]{escape(opened.signature_problem or 'unsigned')}[/]")
    console.print(f"[bold]{escape(bundle.name)}[/] {opened.digest[:16]}  created {m.created}, sequence "
                  f"{m.sequence}", highlight=False)
    console.print(f"signer: {escape(str(who['name'] or '-'))} ({who['key_id'] or 'none'}) {trust}", highlight=False)
    console.print(f"target: {escape(', '.join(m.target.platforms))} / Python {m.target.python}", highlight=False)
    table = Table("pack", "version", "source", "requirements")
    for p in m.packs:
        table.add_row(escape(p.name), escape(p.version or ""), escape(p.source), escape(", ".join(p.requirements)))
    console.print(table)
    console.print(f"wheels: {escape(', '.join(summary['wheels']) or 'none')}", highlight=False)


@app.command("verify")
def verify(
    ctx: typer.Context,
    bundle: BundleArg,
    allow_unsigned: AllowUnsigned = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Check the signature against the trusted keys and every file's sha256; exit 0 when all match.
    A bundle that fails is recorded in the audit log (so a tampered copy that reached this machine is on record)."""
    from partyflow.manager.bundles import BundleError, audit_refusal, verify_bundle

    with failures(as_json):
        where = home_of(ctx, home)
        try:
            opened = verify_bundle(bundle, where, allow_unsigned=allow_unsigned)
        except BundleError as exc:
            audit_refusal(where, bundle, exc, action="bundle-verify")
            raise
    if as_json:
        print_json({"ok": True, **opened.summary()})
        return
    who = f"{opened.signer.name} ({opened.signer.key_id})" if opened.signer else "nobody (unsigned)"
    cli_console().print(f"[green]ok[/]: {escape(bundle.name)} is signed by {escape(who)} and all "
                    f"{len(opened.manifest.files)} files match", highlight=False)


@app.command("install")
def install(
    ctx: typer.Context,
    bundle: BundleArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="verify and show what would change")] = False,
    allow_unsigned: AllowUnsigned = False,
    allow_conflicts: Annotated[bool, typer.Option("--allow-conflicts",
                                                  help="let the bundle change installed packages")] = False,
    skip_install_script: Annotated[bool, typer.Option("--skip-install-script",
                                                      help="install packs without running their install.py")] = False,
    force: Annotated[bool, typer.Option("--force", help="install even if the security scan refuses a pack "
                                                        "(recorded in the audit log; not at level strong)")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Verify, then install with no network: wheels from the bundle only, packs atomically and audited.
    Every pack is scanned and the security level asked before anything changes.
    Installing the same bundle again changes nothing; an interrupted install continues."""
    from partyflow.cli.nodes import _security_level
    from partyflow.manager.bundles import audit_refusal, install_bundle, plan_install
    from partyflow.manager.errors import ManagerError

    level = _security_level(ctx)
    with failures(as_json):
        where = home_of(ctx, home)
        try:
            plan = plan_install(bundle, where, allow_unsigned=allow_unsigned, security_level=level, force=force)
        except ManagerError as exc:
            if not dry_run:  # an install the user asked for and the checks refused: the audit log keeps it
                audit_refusal(where, bundle, exc)
            raise
        if dry_run:
            if as_json:
                print_json({"ok": True, "dry_run": True, "changed": False, **plan.to_dict()})
            else:
                _print_plan(plan)
            return
        if not as_json and plan.changes:
            _print_plan(plan)
        if plan.changes and not yes and not as_json and sys.stdin.isatty() \
                and not typer.confirm("install this bundle?", default=False, err=True):
            raise typer.Exit(EXIT_INVALID)
        with _steps(not as_json) as progress:  # also when nothing changes: it settles an interrupted install
            result = install_bundle(bundle, where, allow_unsigned=allow_unsigned, allow_conflicts=allow_conflicts,
                                    skip_install_script=skip_install_script, progress=progress,
                                    security_level=level, force=force)
    if as_json:
        print_json({"ok": True, **result.to_dict()})
        return
    console = cli_console()
    for action in result.packs:
        mark = "[dim]=[/]" if action.action == "unchanged" else "[green]✓[/]"
        console.print(f"{mark} {action.action} {escape(action.name)} {escape(action.detail)}", highlight=False)
    for name, version in sorted(result.python_installed.items()):
        console.print(f"[green]✓[/] {escape(name)}=={escape(version)}", highlight=False)
    if not result.changed:
        console.print("[dim]nothing changed: the bundle was already installed[/]")


def _print_plan(plan: Any) -> None:
    console = cli_console()
    m = plan.bundle.manifest
    if plan.bundle.signer:
        console.print(f"bundle {plan.bundle.digest[:16]} from {escape(plan.bundle.signer.name)}, sequence "
                      f"{m.sequence}: signature and all {len(m.files)} files verified", highlight=False)
    else:
        console.print(f"[yellow]unsigned[/] bundle {plan.bundle.digest[:16]}: all {len(m.files)} files match its "
                      "manifest, but nobody vouches for the manifest", highlight=False)
    marks = {"install": "[green]+[/]", "replace": "[yellow]~[/]", "unchanged": "[dim]=[/]"}
    for action in plan.packs:
        scan = plan.security.get(action.name, {})
        verdict = f" — scan: {scan['scan_decision']}" if scan.get("scan_decision") else ""
        console.print(f"{marks[action.action]} {escape(action.name)} {escape(action.detail)}{escape(verdict)}",
                      highlight=False)
    if plan.requirements:
        state = "already satisfied" if plan.requirements_satisfied else "to install from the bundle's wheels"
        console.print(f"requirements ({state}): {escape(', '.join(plan.requirements))}", highlight=False)

