"""`partyflow models`: the providers configured in the home's config.toml, and a round trip to check one."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from partyflow.cli.common import EXIT_FAILED, EXIT_INVALID, HomeOption, cli_console, home_from, print_json
from partyflow.config import ConfigError, Home, resolve_home

if TYPE_CHECKING:  # partyflow.llm is imported only by the commands that need it: `--help` stays fast
    from rich.progress import TaskID

    from partyflow.llm import ProviderConfig
    from partyflow.llm.pull import PullResult

app = typer.Typer(help="Model providers: list them, test one, pull model files.", no_args_is_help=True)

_EXTRAS = {"transformers": ("transformers", "local"), "llamacpp": ("llama_cpp", "gguf")}  # type -> (module, extra)
_DIAGNOSES = (  # most specific first: ContextOverflowError is an InvalidRequestError
    ("AuthError", "authentication failed"),
    ("ModelNotFoundError", "model or endpoint not found"),
    ("RateLimitError", "rate limited"),
    ("RequestTimeoutError", "timed out"),
    ("ProviderConnectionError", "cannot reach the server"),
    ("BadResponseError", "malformed reply"),
    ("ServerError", "the provider failed"),
    ("ContextOverflowError", "the prompt does not fit the context window"),
    ("InvalidRequestError", "request rejected"),
)


@contextlib.contextmanager
def config_errors() -> Iterator[None]:
    """A config problem is one escaped line and exit 2 (its hints quote `[providers.NAME]`, which is not markup)."""
    try:
        yield
    except ConfigError as exc:
        cli_console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None


def _home(ctx: typer.Context, home: Path | None) -> Home:
    return Home(resolve_home(home_from(ctx, home)))


def usability(config: ProviderConfig, home: Home, environ: Mapping[str, str] = os.environ) -> tuple[bool, str]:
    """Whether a provider can be used now, without calling it, and why not: a key variable, a path, an extra."""
    if config.type == "openai_compat":
        if not config.api_key_env:
            return True, "no key needed"
        if environ.get(config.api_key_env, "").strip():
            return True, f"${config.api_key_env} is set"
        return False, f"${config.api_key_env} is not set"
    from partyflow.llm import ProviderConfigError

    try:
        path = config.model_path(home)
    except ProviderConfigError as exc:
        return False, exc.message
    if not path.exists():
        return False, f"{path} does not exist"
    module, extra = _EXTRAS[config.type]
    if importlib.util.find_spec(module) is None:
        return False, f"needs pip install 'partyflow[{extra}]'"
    return True, f"{path} exists"


@app.command("list")
def list_models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    home: HomeOption = None,
) -> None:
    """List every configured provider and whether it is usable (key variable set, model path present)."""
    from partyflow.llm import ProvidersConfig

    with config_errors():
        where = _home(ctx, home)
        providers = ProvidersConfig.load(where)
    rows = []
    for name in sorted(providers):
        config = providers.get(name)
        usable, reason = usability(config, where)
        rows.append({"name": name, "type": config.type, "endpoint": config.base_url or config.path or "(default)",
                     "model": config.model or "", "usable": usable, "reason": reason})
    for name, router in sorted(providers.routers.items()):  # issue 18: routers are model names too
        usable_members = [m for m in router.members if m in providers.routers
                          or usability(providers.get(m), where)[0]]
        rows.append({"name": name, "type": "router", "endpoint": " > ".join(router.members),
                     "model": f"({router.strategy})", "usable": bool(usable_members),
                     "reason": f"{len(usable_members)} of {len(router.members)} members usable"})
    if as_json:
        print_json(rows)
        return
    if not rows:
        cli_console(stderr=True).print(f"no providers configured: add a {escape('[providers.NAME]')} table to "
                                   f"{escape(str(where.config_file))}", highlight=False)
        return
    table = Table("name", "type", "base_url / path", "default model", "usable", "why")
    for row in rows:
        table.add_row(escape(row["name"]), row["type"], escape(row["endpoint"]), escape(row["model"] or "-"),
                      "[green]yes[/]" if row["usable"] else "[red]no[/]", escape(row["reason"]))
    cli_console().print(table)


@app.command("test")
def test_model(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="a provider name from config.toml", show_default=False)],
    prompt: Annotated[str, typer.Option(help="what to send")] = "Reply with one short friendly sentence.",
    model: Annotated[str | None, typer.Option(help="a model other than the provider's default")] = None,
    timeout: Annotated[float | None, typer.Option(help="seconds to wait (default: the provider's timeout)",
                                                  min=0.1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    home: HomeOption = None,
) -> None:
    """Send one prompt to a provider and show the model, the reply and the timing, or what went wrong."""
    from partyflow.llm import ChatRequest, LLMError, ProvidersConfig, UserMessage
    from partyflow.llm.config import ProviderConfig
    from partyflow.llm.providers import create
    from partyflow.llm.usage.services import ModelServices

    with config_errors():
        where = _home(ctx, home)
        providers = ProvidersConfig.load(where)
        entry = providers.entry(name)  # a provider, or a router (issue 18)
        if timeout is not None and isinstance(entry, ProviderConfig):
            providers = replace(providers, providers={**providers.providers,
                                                      name: entry.model_copy(update={"timeout": timeout})})
        services = ModelServices(where.root, where.state_db)  # the call goes in the usage ledger too
        meter = services.meter_for(where.config_file)
        provider = create(name, providers, meter=meter, health=services.health,
                          **({} if entry.type == "openai_compat" else {"home": where}))
    err = cli_console(stderr=True)
    started = time.perf_counter()
    try:
        with config_errors(), err.status(f"asking {name}...", spinner="dots"):
            response = provider.chat(ChatRequest(messages=(UserMessage(content=prompt),), model=model))
    except LLMError as exc:
        err.print(f"[bold red]{_diagnosis(exc)}:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        provider.close()
        services.close()
    seconds = time.perf_counter() - started
    usage = response.usage
    result = {"provider": name, "model": response.model, "reply": response.text, "seconds": round(seconds, 3),
              "prompt_tokens": usage.prompt_tokens if usage else None,
              "completion_tokens": usage.completion_tokens if usage else None}
    if as_json:
        print_json(result)
        return
    console = cli_console(highlight=False)
    console.print(f"[bold]model[/]  {escape(response.model)} ({escape(name)})")
    console.print(f"[bold]reply[/]  {escape(response.text)}")
    tokens = f", {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens" if usage else ""
    console.print(f"[bold]time[/]   {seconds:.2f} s{tokens}")


@app.command("usage")
def usage(
    ctx: typer.Context,
    by: Annotated[str, typer.Option("--by", help="group by provider, model, workflow, user, router, day or operation")]
    = "provider",
    since: Annotated[str | None, typer.Option("--since", help="only calls since: 24h, 7d, 30d or a date "
                                                              "(2026-12-01)", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    home: HomeOption = None,
) -> None:
    """What model calls used and cost, from the usage ledger in state.sqlite (every call, failed ones too)."""
    from partyflow.llm.usage.ledger import GROUPINGS, UsageLedger

    err = Console(stderr=True)
    if by not in GROUPINGS:
        err.print(f"[bold red]error:[/] --by must be one of {', '.join(GROUPINGS)}, not {escape(by)!r}")
        raise typer.Exit(EXIT_INVALID)
    try:
        start = parse_since(since, time.time()) if since else None
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    where = _home(ctx, home)
    if not where.state_db.exists():
        rows = []
    else:
        with UsageLedger(where.state_db) as ledger:
            rows = [row.as_json() for row in ledger.report(by, start)]
    if as_json:
        print_json({"by": by, "since": start, "rows": rows})
        return
    if not rows:
        err.print("no model calls recorded" + (f" since {since}" if since else ""), highlight=False)
        return
    table = Table(by, "calls", "errors", "unfinished", "prompt tokens", "completion tokens", "cost",
                  "mean latency")
    for row in rows:
        latency = row["mean_latency"]
        table.add_row(escape(row["key"] or "-"), str(row["calls"]), str(row["errors"]), str(row["unfinished"]),
                      str(row["prompt_tokens"]), str(row["completion_tokens"]), f"{row['cost']:.6g}",
                      "-" if latency is None else f"{latency:.3f} s")
    Console().print(table)


def parse_since(text: str, now: float) -> float:
    """A Unix time from "24h", "7d", "90m" (ago) or an ISO date/time (UTC when it names no zone)."""
    import datetime as dt

    units = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    value = text.strip().lower()
    if value[-1:] in units and value[:-1].replace(".", "", 1).isdigit():
        return now - float(value[:-1]) * units[value[-1]]
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r} is neither a duration (24h, 7d) nor a date (2026-12-01)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _diagnosis(exc: Exception) -> str:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return next((text for name, text in _DIAGNOSES if name in names), "the call failed")


@app.command("pull")
def pull_model(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="https://.../NAME.gguf, hf:ORG/REPO (a model folder; "
                                               "hf:ORG/REPO@REVISION for a branch, tag or commit) or "
                                               "hf:ORG/REPO/FILE.gguf", show_default=False)],
    name: Annotated[str | None, typer.Option("--name", help="the name under models/ (default: from the source)",
                                             show_default=False)] = None,
    sha256: Annotated[str | None, typer.Option("--sha256", help="expected sha256 of the file (hex)",
                                               show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="download again even if the model is there")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    home: HomeOption = None,
) -> None:
    """Download a GGUF file into models/gguf/ or a model folder into models/llm/, resuming and checking sha256.

    hf: names use $PARTYFLOW_HF_ENDPOINT (default https://huggingface.co) and $HF_TOKEN for gated repos.
    """
    from partyflow.llm.pull import PullError, PullSourceError, pull

    err = cli_console(stderr=True)
    with config_errors():
        where = _home(ctx, home).ensure()
    try:
        with _ProgressBars(err) as bars:
            result = pull(source, where, name=name, sha256=sha256, force=force, progress=bars)
    except PullError as exc:
        err.print(f"[bold red]pull failed:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID if isinstance(exc, PullSourceError) else EXIT_FAILED) from None
    if as_json:
        print_json(_pull_json(result))
        return
    _print_pull(result, cli_console(highlight=False, soft_wrap=True))


def _pull_json(result: PullResult) -> dict[str, object]:
    return {"source": result.source, "kind": result.kind, "path": str(result.target), "skipped": result.skipped,
            "bytes": result.bytes, "files": [{"name": f.name, "bytes": f.bytes, "sha256": f.sha256,
                                              "verified_by": f.verified_by or None,
                                              "resumed_from": f.resumed_from} for f in result.files]}


def _print_pull(result: PullResult, console: Console) -> None:
    if result.skipped:
        console.print(f"already there: {escape(str(result.target))} (use --force to download again)")
        return
    unverified = [f.name for f in result.files if not f.verified_by]
    check = ("sha256 verified" if not unverified
             else f"[yellow]not verified[/] (no checksum offered for {escape(', '.join(unverified))})")
    console.print(f"[bold green]pulled[/] {escape(result.source)} -> {escape(str(result.target))} "
                  f"({len(result.files)} file{'s' if len(result.files) != 1 else ''}, "
                  f"{result.bytes / 1e6:.1f} MB, {check})")


class _ProgressBars:
    """`PullProgress` as rich progress bars on stderr, one per file; a resumed file starts where it stopped."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                  TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=False)
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _ProgressBars:
        return self  # the display starts with the first file: a pull refused before that prints only its error

    def __exit__(self, *exc_info: object) -> None:
        if self._tasks:
            self._progress.stop()

    def start(self, name: str, total: int | None, done: int) -> None:
        if not self._tasks:
            self._progress.start()
        task = self._tasks.get(name)
        if task is None:
            self._tasks[name] = self._progress.add_task(escape(name), total=total, completed=done)
        else:
            self._progress.update(task, total=total, completed=done)

    def advance(self, name: str, nbytes: int) -> None:
        self._progress.advance(self._tasks[name], nbytes)

    def finish(self, name: str) -> None:
        self._progress.refresh()
