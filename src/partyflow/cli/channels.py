"""`partyflow channels list|test|run`: chat platforms answered by published workflows (docs/channels.md)."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from partyflow.cli.common import (
    EXIT_INVALID,
    HomeOption,
    cli_console,
    home_from,
    open_engine,
    print_json,
    user_errors,
)

app = typer.Typer(help="Chat platforms (Slack, Telegram, Feishu, Discord, webhooks) answered by published workflows.",
                  no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="channels")


@app.command("list")
def list_channels(ctx: typer.Context, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Configured channels: platform, workflow, and whether their credentials are set (names only)."""
    from partyflow.channels import ChannelConfigError, load_channels

    with user_errors():
        engine = open_engine(home_from(ctx, home), load_custom_nodes=False)
    try:
        configs = load_channels(engine.settings.raw)
    except ChannelConfigError as exc:
        cli_console(stderr=True).print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    finally:
        engine.close()
    rows = [{"name": c.name, "type": c.type, "model": c.model, "session": c.session,
             "missing": c.missing_credentials()} for c in configs.values()]
    if as_json:
        print_json(rows)
        return
    if not rows:
        cli_console().print("no channels: add [channels.NAME] tables to config.toml (docs/channels.md)", markup=False)
        return
    table = Table("name", "type", "workflow", "session", "credentials")
    for row in rows:
        table.add_row(escape(row["name"]), row["type"], escape(row["model"]), row["session"],
                      escape("missing " + ", ".join(row["missing"])) if row["missing"] else "set")
    cli_console().print(table)


@app.command("test")
def test(ctx: typer.Context, name: Annotated[str, typer.Argument(help="a [channels.NAME] table")],
         offline: Annotated[bool, typer.Option("--offline", help="do not ask the platform to check the credentials")]
         = False, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Check a channel without posting: config, credentials, workflow, and the platform's answer (exit 2 if not).

    Unless --offline, the platform is asked whether it accepts the credentials."""
    from partyflow.channels import start_channels
    from partyflow.channels.service import check_online

    with user_errors():
        engine = open_engine(home_from(ctx, home))
    try:
        channels = start_channels(engine, [name])
        if name in channels.running and not offline:
            asyncio.run(check_online(channels, name))
        channels.close()
    finally:
        engine.close()
    problem = channels.problems.get(name) or channels.problems.get("[channels]")
    if name not in channels.running and problem is None:
        problem = f"no [channels.{name}] table in config.toml"
    if as_json:
        print_json({"channel": name, "ok": problem is None, "problem": problem})
    elif problem:
        cli_console(stderr=True).print(f"error: channel {name}: {problem}", markup=False, highlight=False)
    else:
        cli_console().print(f"channel {name}: ready", markup=False)
    if problem:
        raise typer.Exit(EXIT_INVALID)


@app.command("run")
def run(ctx: typer.Context, names: Annotated[list[str] | None, typer.Argument(help="channels (default: all)")] = None,
        home: HomeOption = None) -> None:
    """Hold the Discord gateway, Slack Socket Mode, Feishu long-connection and Telegram long-polling connections
    until Ctrl-C.

    Webhook platforms are served by `partyflow serve`."""
    from partyflow.channels import run_polling

    with user_errors():
        engine = open_engine(home_from(ctx, home))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        channels = await run_polling(engine, names or None, stop)
        for channel, problem in channels.problems.items():
            cli_console(stderr=True).print(f"channel {channel}: {problem}", markup=False, highlight=False)
        if not channels.running:
            raise typer.Exit(EXIT_INVALID)

    try:
        asyncio.run(main())
    finally:
        engine.close()





@app.command("history")
def history(ctx: typer.Context, name: Annotated[str | None, typer.Argument(help="one channel (default: all)")] = None,
            limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="newest N messages")] = 50,
            as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Messages the channels answered, newest first: who, when, which workflow, tokens and cost."""
    from contextlib import closing
    from datetime import datetime

    from partyflow.channels.runtime import channel_history, open_history
    from partyflow.config import Home, resolve_home

    with user_errors():
        state_db = Home(resolve_home(home_from(ctx, home))).state_db
    with closing(open_history(state_db)) as db:
        rows = channel_history(db, name, limit=limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        cli_console().print("no channel messages yet", markup=False)
        return
    table = Table("when (UTC)", "channel", "user", "workflow", "status", "tokens", "cost", "message")
    for row in rows:
        when = datetime.fromtimestamp(row["received"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        cost = "" if row["cost"] is None else f"{row['cost']:.4f}"
        table.add_row(when, escape(row["channel"]), escape(row["user"]), escape(row["workflow"]), row["status"],
                      str(row["prompt_tokens"] + row["completion_tokens"]), cost, escape(row["text"][:60]))
    cli_console().print(table)
