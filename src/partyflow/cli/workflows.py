"""`partyflow run`, `validate` and `convert`: workflows from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from partyflow.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    HomeOption,
    cli_console,
    home_from,
    open_engine,
    print_json,
    stdout_kept_for_result,
    user_errors,
)

WorkflowArg = Annotated[Path, typer.Argument(help="workflow JSON (API format or saved from the editor)",
                                             show_default=False)]


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("validate")(validate)
    app.command("convert")(convert)


def run(
    ctx: typer.Context,
    workflow: WorkflowArg,
    set_: Annotated[list[str] | None, typer.Option("--set", metavar="NODE.INPUT=JSON", help="override an input: NODE.INPUT=VALUE (NODE is an id "
                                                    "or a unique title; VALUE is JSON or text)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    cache: Annotated[str | None, typer.Option(help="cache strategy: none, classic or lru:N")] = None,
    home: HomeOption = None,
) -> None:
    """Run a workflow and print what its output nodes produced."""
    out = cli_console()
    with user_errors(), stdout_kept_for_result(as_json):  # packs may print; --json stdout stays JSON
        engine = open_engine(home_from(ctx, home), cache=cache)
        engine.host.source = _local_source(ctx)  # the global --security-level reaches code-running tools
        prompt = engine.load_workflow(workflow, overrides=set_ or [])
        with _node_tracebacks_logged(_verbose(ctx)):
            result = _run_with_progress(engine, prompt, show=not as_json and sys.stderr.isatty(),
                                        extra_data=_editor_extra_data(workflow))
    if as_json:
        print_json({"prompt_id": result.prompt_id, "status": result.status, "outputs": result.outputs,
                    "executed": result.executed, "cached": result.cached, "timings": result.timings,
                    "error": None if result.error is None else {
                        "node_id": result.error.node_id, "class_type": result.error.class_type,
                        "message": result.error.message, "exception_type": result.error.exception_type}})
    else:
        _print_outputs(out, prompt, result)
    engine.close()
    if result.status == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.status != "success":
        raise typer.Exit(EXIT_FAILED)


def _verbose(ctx: typer.Context) -> bool:
    return bool(ctx.find_root().params.get("verbose"))


@contextlib.contextmanager
def _node_tracebacks_logged(verbose: bool) -> Iterator[None]:
    """Without --verbose, a failing node's traceback stays out of the terminal: the run reports the failure
    itself in one line (users act on the message; the traceback is for pack authors, who add --verbose)."""
    if verbose:
        yield
        return
    executor_log = logging.getLogger("partyflow.executor")
    quiet = _BelowError()
    executor_log.addFilter(quiet)
    try:
        yield
    finally:
        executor_log.removeFilter(quiet)


class _BelowError(logging.Filter):
    """Drops the executor's node-failure records (ERROR), keeping its warnings about packs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


def _editor_extra_data(workflow: Path) -> dict[str, Any] | None:
    """What the editor sends with a prompt it queues: the UI workflow as `extra_pnginfo.workflow` (packs read it;
    saved images embed it). Only for UI-format files."""
    from partyflow.graph.ui_format import is_ui_workflow
    from partyflow.graph.workflow import read_workflow_file

    try:
        document = read_workflow_file(workflow)
    except Exception:  # already read once by load_workflow; a second failure only means no extra data
        return None
    return {"extra_pnginfo": {"workflow": document}} if is_ui_workflow(document) else None


def _run_with_progress(engine: Any, prompt: dict[str, Any], *, show: bool,
                       extra_data: dict[str, Any] | None = None) -> Any:
    from partyflow.engine.events import Event, Executed, Executing, ExecutionCached
    from partyflow.engine.events import Progress as NodeProgress

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=cli_console(stderr=True), transient=True, disable=not show)
    task = progress.add_task("starting", total=len(prompt))

    def on_event(event: Event) -> None:
        if isinstance(event, ExecutionCached):
            progress.update(task, total=max(1, len(prompt) - len(event.nodes)))
        elif isinstance(event, Executing) and event.node:
            node = prompt.get(event.node, {})
            progress.update(task, description=f"{node.get('class_type', event.node)} (#{event.node})")
        elif isinstance(event, Executed):
            progress.advance(task)
        elif isinstance(event, NodeProgress) and event.max:
            progress.update(task, description=f"#{event.node} {event.value:g}/{event.max:g}")

    async def go() -> Any:
        loop = asyncio.get_running_loop()
        with contextlib_suppress_signal(loop, engine):
            return await engine.run_async(prompt, sinks=[on_event], extra_data=extra_data)

    with progress:
        return asyncio.run(go())


class contextlib_suppress_signal:
    """Ctrl-C interrupts the prompt cleanly (reported as interrupted) instead of killing the process mid-write."""

    def __init__(self, loop: asyncio.AbstractEventLoop, engine: Any) -> None:
        self.loop, self.engine = loop, engine

    def __enter__(self) -> None:
        try:
            self.loop.add_signal_handler(signal.SIGINT, self.engine.interrupt)
        except (NotImplementedError, RuntimeError):
            pass

    def __exit__(self, *exc: object) -> None:
        try:
            self.loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError):
            pass


def _print_outputs(out: Console, prompt: dict[str, Any], result: Any) -> None:
    err = cli_console(stderr=True)
    for node_id, ui in result.outputs.items():
        label = output_label(node_id, prompt.get(node_id, {}))
        texts = ui.get("text") if isinstance(ui, dict) else None
        values = ([t if isinstance(t, str) else json.dumps(t, default=str) for t in texts] if texts
                  else [json.dumps(ui, default=str)])
        for value in values:
            if "\n" in value:  # a block of text reads best under its label
                out.print(f"{label}:", style="bold", markup=False, highlight=False)
                out.print(value, markup=False, highlight=False)
            else:
                out.print(f"{label}: {value}", markup=False, highlight=False)
    if result.error is not None:
        err.print(f"[bold red]failed:[/] {escape(result.error.describe())}", highlight=False)
        if result.error.traceback:
            err.print("[dim](partyflow --verbose run ... shows the traceback)[/]", highlight=False)
    elif result.status == "interrupted":
        err.print("[yellow]interrupted[/]")
    else:
        seconds = sum(result.timings.values())
        err.print(f"[dim]{len(result.executed)} node(s) ran, {len(result.cached)} cached, {seconds:.2f}s node time[/]")


def output_label(node_id: str, node: dict[str, Any]) -> str:
    """How `run` names an output: the node's title when it has one, else its class, with the id to find it by."""
    meta = node.get("_meta") if isinstance(node, dict) else None
    title = meta.get("title") if isinstance(meta, dict) else None
    name = title or (node.get("class_type") if isinstance(node, dict) else None) or "node"
    return f"{name} (#{node_id})"


def _local_source(ctx: typer.Context) -> Any:
    from partyflow.nodes.host import PromptSource

    obj = ctx.find_root().obj
    return PromptSource(security_level=obj.get("security_level") if isinstance(obj, dict) else None)


def validate(
    ctx: typer.Context,
    workflow: WorkflowArg,
    as_json: Annotated[bool, typer.Option("--json", help="print ComfyUI's error JSON")] = False,
    home: HomeOption = None,
) -> None:
    """Check a workflow without running it; lists every problem at once (exit code 2 if any)."""
    out = cli_console()
    with user_errors(), stdout_kept_for_result(as_json):
        engine = open_engine(home_from(ctx, home))
        result = engine.validate(engine.load_workflow(workflow))
    engine.close()
    if as_json:
        print_json(result.to_json())
    elif result.ok:
        out.print(f"[green]valid[/]: {len(result.prompt)} node(s), output node(s) {', '.join(result.outputs)}")
    else:
        out.print("[bold red]The workflow is not valid:[/]")
        for line in result.summary():
            out.print(f"  - {line}", markup=False, highlight=False)
    if not result.ok:
        raise typer.Exit(EXIT_INVALID)


def convert(
    ctx: typer.Context,
    workflow: WorkflowArg,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here instead of standard output")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="fail (exit 2) instead of warning when a node's type is "
                                          "not installed and its widget values cannot be converted")] = False,
    home: HomeOption = None,
) -> None:
    """Write the API-format prompt of a workflow (UI workflows are converted with the installed nodes)."""
    from partyflow.graph.workflow import read_workflow_file, uninstalled_nodes

    with user_errors():
        engine = open_engine(home_from(ctx, home))
        document = read_workflow_file(workflow)
        prompt = engine.load_workflow(document)
        missing = uninstalled_nodes(document, engine.registry)
    engine.close()
    err = cli_console(stderr=True)
    for node_id, kind, values in missing:
        lost = f"; its {values} widget value(s) are left out" if values else ""
        err.print(f"{'error' if strict else 'warning'}: node #{node_id} ({kind}) is not installed{lost} "
                  f"(install the pack that provides it: partyflow nodes which {kind})", markup=False,
                  highlight=False)
    if missing and strict:
        raise typer.Exit(EXIT_INVALID)
    text = json.dumps(prompt, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    temporary = output.with_name(output.name + ".tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(output)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        cli_console(stderr=True).print(f"[bold red]error:[/] {escape(f'cannot write {output}: {exc.strerror}')}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
