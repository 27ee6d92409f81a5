"""What every command shares: the home option, engine creation and turning errors into exit codes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from partyflow.config import HOME_ENV, ConfigError

EXIT_FAILED = 1    # the workflow ran and failed
EXIT_INVALID = 2   # the user's input was refused before anything ran
EXIT_INTERRUPTED = 130

# Every command that changes something takes --yes (never ask; a no-op where nothing is asked) and --json, so CI
# pipelines can call any of them the same way (issue 14 item 5; exit codes in docs/manager.md).
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar=HOME_ENV, help="partyflow home directory (default ~/.partyflow)", show_default=False),
]


_UNLIMITED_WIDTH = 1_000_000


def cli_console(*, stderr: bool = False, **options: Any) -> Console:
    """A Rich console for a command's output.

    Output that goes to a pipe or a file is read by programs and pagers (`partyflow nodes list | less`), so it is
    never cut to a terminal's width: tables keep whole class names and messages are not wrapped mid-sentence.
    A terminal gets Rich's usual fitting to its width.
    """
    stream = sys.stderr if stderr else sys.stdout
    if not _is_terminal(stream):
        options.setdefault("width", _UNLIMITED_WIDTH)
        options.setdefault("soft_wrap", True)
    return Console(stderr=stderr, **options)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams (test runners) are not terminals
        return False


def consoles() -> tuple[Console, Console]:
    return cli_console(), cli_console(stderr=True)


def home_from(ctx: typer.Context, home: Path | None) -> Path | None:
    """A command's own --home wins over the global one."""
    if home is not None:
        return home
    obj = ctx.find_root().obj
    return obj.get("home") if isinstance(obj, dict) else None


def target_home(ctx: typer.Context, home: Path | None) -> Any:  # -> partyflow.config.Home
    """The installation a manager command acts on: the ComfyUI chosen by the global `--comfyui` (or
    $PARTYFLOW_COMFYUI, or config.toml's [target] table), else the home. Raises ManagerError for a path that is not
    ComfyUI or a Python that does not run, before anything changes."""
    from partyflow.manager.targets import resolve

    obj = ctx.find_root().obj
    obj = obj if isinstance(obj, dict) else {}
    return resolve(home_from(ctx, home), obj.get("comfyui"), obj.get("comfyui_python"))


def open_engine(home: Path | None, **options: Any):  # -> Engine (imported lazily: keeps --help fast)
    from partyflow.engine.engine import Engine

    return Engine(home=home, **options)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Refused input becomes a one-line message and exit code 2, never a traceback."""
    from partyflow.engine.engine import PromptValidationError
    from partyflow.graph.errors import WorkflowFormatError
    from partyflow.store.sqlite import StoreError

    err = cli_console(stderr=True)
    try:
        yield
    except PromptValidationError as exc:
        err.print("[bold red]The workflow is not valid:[/]")
        for line in exc.result.summary():
            err.print(f"  - {line}", markup=False, highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    except (WorkflowFormatError, ConfigError, StoreError, PermissionError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None


@contextlib.contextmanager
def writing(output: Path) -> Iterator[None]:
    """An output file that cannot be written (missing folder, no permission, disk full) is a one-line error."""
    try:
        yield
    except OSError as exc:
        cli_console(stderr=True).print(f"[bold red]error:[/] cannot write {escape(str(output))}: "
                                   f"{escape(exc.strerror or str(exc))}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None


@contextlib.contextmanager
def stdout_kept_for_result(active: bool = True) -> Iterator[None]:
    """While active, whatever packs and nodes print (Python's `print` from any thread, and writes to file
    descriptor 1 by extensions or subprocesses) goes to stderr, so stdout carries only the command's result."""
    if not active:
        yield
        return
    saved_fd = None
    try:
        sys.stdout.flush()
        if sys.stdout.fileno() == 1:
            saved_fd = os.dup(1)
            os.dup2(2, 1)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        saved_fd = None  # not a real file (tests capture stdout): the Python-level redirect is enough
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved_fd is not None:
            sys.stderr.flush()
            os.dup2(saved_fd, 1)
            os.close(saved_fd)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
