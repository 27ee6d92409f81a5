"""The `partyflow` command: one module per command group, wired here."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from partyflow import __version__
from partyflow.cli import access as access_cli  # issue 17: users and tokens
from partyflow.cli import (  # noqa: F401 (nodes_catalog: adds to `nodes`)
    audit,
    help_format,
    mcp,
    models,
    nodes,
    nodes_bench,  # noqa: F401 (adds `nodes bench`, issue 14 item 4)
    nodes_catalog,
    nodes_stubs,  # noqa: F401 (adds `nodes stubs`)
    serve,
    snapshot,
    workflows,
)
from partyflow.cli import backup as backup_cli  # issue 6 items 6-7
from partyflow.cli import bundle as bundle_cli  # issue 6 items 1-3
from partyflow.cli import channels as channels_cli  # issue 16
from partyflow.cli import env as env_cli  # issue 14 item 3
from partyflow.cli import kb as kb_cli  # issue 12
from partyflow.cli import keys as keys_cli  # issue 6 items 1-3
from partyflow.cli import mirror as mirror_cli  # issue 6 items 1-3
from partyflow.cli import ray as ray_cli  # issue 15
from partyflow.cli import report as report_cli  # issue 6 items 6-7
from partyflow.cli import scan as scan_cli  # issue 6 items 4-5
from partyflow.cli.common import HomeOption
from partyflow.security.levels import LEVEL_ENV, MANAGER_LEVEL_ENV, SecurityLevel

LEVEL_NAMES = [level.value for level in SecurityLevel]

app = typer.Typer(name="partyflow", help="Run LLM agent workflows as node graphs (ComfyUI-compatible).",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
app.add_typer(nodes.app, name="nodes")
app.add_typer(models.app, name="models")
app.add_typer(audit.app, name="audit")
app.add_typer(snapshot.app, name="snapshot")
app.add_typer(keys_cli.app, name="keys")  # issue 6, item 1
app.add_typer(bundle_cli.app, name="bundle")  # issue 6, item 2
app.add_typer(mirror_cli.app, name="mirror")  # issue 6, item 3
workflows.register(app)
serve.register(app)
report_cli.register(app)  # issue 6, item 6
app.add_typer(backup_cli.app, name="backup")  # issue 6, item 7
app.add_typer(ray_cli.app, name="ray")  # issue 15
mcp.register(app)
scan_cli.register(app)  # issue 6, item 4: `scan` and `vulndb`
access_cli.register(app)  # issue 17: `users` and `tokens`
channels_cli.register(app)  # issue 16: `channels`
app.add_typer(kb_cli.app, name="kb")  # issue 12
env_cli.register(app)  # issue 14 item 3: `env list|diff|promote`


def _version(value: bool) -> None:
    if value:
        typer.echo(f"partyflow {__version__}")
        raise typer.Exit()


def _check_level(value: str | None) -> str | None:
    if value is not None and value.strip().lower() not in LEVEL_NAMES:
        raise typer.BadParameter(f"{value!r} is not a security level; use one of {', '.join(LEVEL_NAMES)}")
    return value


def _check_level_env() -> None:
    for name in (LEVEL_ENV, MANAGER_LEVEL_ENV):
        raw = os.environ.get(name)
        if raw and raw.strip().lower() not in LEVEL_NAMES:
            raise typer.BadParameter(f"{name}={raw!r} is not a security level; use one of {', '.join(LEVEL_NAMES)}")


@app.callback()
def main_options(
    ctx: typer.Context,
    home: HomeOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log pack loading and execution details")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
    security_level: Annotated[str | None, typer.Option(  # security policy (issue 6, items 4-5)
        "--security-level", help="strong, normal, normal- or weak for this command (default: "
        "PARTYFLOW_SECURITY_LEVEL, then config.toml's security_level, then normal)", show_default=False,
        callback=_check_level)] = None,
    comfyui: Annotated[Path | None, typer.Option(  # issue 14: a ComfyUI install as the manager's target
        "--comfyui", envvar="PARTYFLOW_COMFYUI", show_default=False,
        help="manage this ComfyUI install's custom_nodes and Python instead of the home's (default: config.toml "
             "[target] comfyui)")] = None,
    comfyui_python: Annotated[str | None, typer.Option(
        "--comfyui-python", envvar="PARTYFLOW_COMFYUI_PYTHON", show_default=False,
        help="the Python that ComfyUI runs in (default: its venv/ or .venv/, else [target] python)")] = None,
) -> None:
    _check_level_env()  # a bogus level is refused here, for every command, not only those that install
    ctx.obj = {"home": Path(home) if home else None, "security_level": security_level,
               "comfyui": comfyui, "comfyui_python": comfyui_python}
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def command() -> Any:
    """The click command behind `partyflow`, with help text polished (see help_format)."""
    return help_format.polish(typer.main.get_command(app))


def main() -> None:
    command()(prog_name="partyflow")
