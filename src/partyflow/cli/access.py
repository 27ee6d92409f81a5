"""`partyflow users` and `partyflow tokens`: who may use a server, with which role, through which tokens.

Every change is written to the home's audit log with the OS user who made it. Tokens are printed once, when
created; only their hash is kept.
"""

from __future__ import annotations

import contextlib
import getpass
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from partyflow.cli.common import EXIT_INVALID, HomeOption, cli_console, home_from, print_json

if TYPE_CHECKING:
    from partyflow.access import AccessStore, UserInfo

users_app = typer.Typer(help="Users of a shared server and their roles (viewer, runner, publisher, admin).",
                        no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for users: create (shown once), list, revoke.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]
RoleOption = Annotated[str, typer.Option("--role", metavar="ROLE", help="viewer, runner, publisher or admin")]


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")


@contextlib.contextmanager
def _store(ctx: typer.Context, home: Path | None, action: str | None = None,
           target: str | None = None) -> Iterator[AccessStore]:
    """The home's access store; bad input becomes one line and exit code 2, and a change is audited."""
    from partyflow.access import AccessStore
    from partyflow.config import Home, resolve_home
    from partyflow.manager.audit import AuditLog
    from partyflow.store.sqlite import StoreError

    err = cli_console(stderr=True)
    root = Home(resolve_home(home_from(ctx, home))).ensure()
    try:
        store = AccessStore(root.state_db)
    except StoreError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    try:
        yield store
    except (ValueError, LookupError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        err.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    finally:
        store.close()
    if action is not None:
        with AuditLog(root) as log:
            log.record(action, details={"target": target})


@users_app.command("add")
def add_user(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="user name (also the user's data folder)")],
    role: RoleOption = "runner",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read a password for the browser "
                                                 "login from standard input (else asked for when a terminal)")] = False,
    no_password: Annotated[bool, typer.Option("--no-password", help="token access only, no browser login")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Add a user with a role; give a password for the editor's login page, or use tokens only."""
    password = None if no_password else _password(password_stdin)
    with _store(ctx, home, "access.user.add", name) as store:
        user = store.add_user(name, role, password)
    _done(as_json, {"user": user.name, "role": user.role, "password": user.has_password},
          f"added {user.name} ({user.role})")


@users_app.command("list")
def list_users(ctx: typer.Context, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Users, their roles and whether they are disabled."""
    with _store(ctx, home) as store:
        users = store.users()
    if as_json:
        print_json([{"user": u.name, "role": u.role, "disabled": u.disabled, "password": u.has_password,
                     "sso": u.sso, "created": u.created} for u in users])
        return
    if not users:
        cli_console().print("no users: a loopback server serves everyone as the local admin "
                            "(partyflow users add NAME --role admin)", markup=False, highlight=False)
        return
    table = Table("user", "role", "state", "login", "created")
    for u in users:
        table.add_row(escape(u.name), u.role, "disabled" if u.disabled else "active",
                      _login_kind(u), u.created[:19])
    cli_console().print(table)


def _login_kind(user: UserInfo) -> str:
    kinds = [k for k, on in (("single sign-on", user.sso), ("password", user.has_password)) if on]
    return " + ".join(kinds) or "tokens only"


@users_app.command("set-role")
def set_role(ctx: typer.Context, name: Annotated[str, typer.Argument(help="user name")],
             role: Annotated[str, typer.Argument(metavar="ROLE", help="viewer, runner, publisher or admin")],
             as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Change a user's role (takes effect on their next request)."""
    with _store(ctx, home, "access.user.set-role", f"{name}:{role}") as store:
        store.set_role(name, role)
    _done(as_json, {"user": name, "role": role}, f"{name} is now {role}")


@users_app.command("disable")
def disable(ctx: typer.Context, name: Annotated[str, typer.Argument(help="user name")],
            as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Stop a user's tokens and sessions from working, keeping their data and tokens for later."""
    _set_disabled(ctx, home, name, True, as_json)


@users_app.command("enable")
def enable(ctx: typer.Context, name: Annotated[str, typer.Argument(help="user name")],
           as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Let a disabled user in again."""
    _set_disabled(ctx, home, name, False, as_json)


def _set_disabled(ctx: typer.Context, home: Path | None, name: str, disabled: bool, as_json: bool) -> None:
    verb = "disable" if disabled else "enable"
    with _store(ctx, home, f"access.user.{verb}", name) as store:
        store.set_disabled(name, disabled)
    _done(as_json, {"user": name, "disabled": disabled}, f"{verb}d {name}")


@users_app.command("remove")
def remove(ctx: typer.Context, name: Annotated[str, typer.Argument(help="user name")],
           yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
           as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Remove a user and their tokens and sessions (their data folder stays)."""
    if not yes and sys.stdin.isatty() and not typer.confirm(f"remove user {name} and revoke their tokens?"):
        raise typer.Exit(EXIT_INVALID)
    with _store(ctx, home, "access.user.remove", name) as store:
        store.remove_user(name)
    _done(as_json, {"user": name, "removed": True}, f"removed {name}")


@users_app.command("passwd")
def passwd(ctx: typer.Context, name: Annotated[str, typer.Argument(help="user name")],
           password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read it from standard input")] = False,
           home: HomeOption = None) -> None:
    """Set a user's password for the editor's login page."""
    password = _password(password_stdin)
    if password is None:
        cli_console(stderr=True).print("error: give a password (--password-stdin when not at a terminal)",
                                       markup=False)
        raise typer.Exit(EXIT_INVALID)
    with _store(ctx, home, "access.user.password", name) as store:
        store.set_password(name, password)
    _done(False, {}, f"password set for {name}")


@tokens_app.command("create")
def create_token(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", metavar="USER", help="whose token")],
    expires: Annotated[str | None, typer.Option("--expires", metavar="DURATION", help="e.g. 90m, 12h, 30d, 2w "
                                                "(default: never)")] = None,
    scope: Annotated[list[str] | None, typer.Option("--scope", metavar="SCOPE", help="narrower than the role: "
                                                    "read, run, publish, admin or chat:MODEL (repeatable)")] = None,
    label: Annotated[str | None, typer.Option("--label", metavar="TEXT", help="what the token is for")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Create a token and print it once (only its hash is kept)."""
    from partyflow.access import parse_duration

    try:
        lifetime = parse_duration(expires) if expires else None
    except ValueError as exc:
        cli_console(stderr=True).print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    with _store(ctx, home, "access.token.create", user) as store:
        text, info = store.create_token(user, expires_in=lifetime, scopes=tuple(scope or ()), label=label)
    if as_json:
        print_json({"token": text, "id": info.id, "user": info.user, "scopes": list(info.scopes),
                    "expires": info.expires})
        return
    sys.stdout.write(text + "\n")
    cli_console(stderr=True).print(f"token {info.id} for {info.user}"
                                   f"{' (' + ', '.join(info.scopes) + ')' if info.scopes else ''}"
                                   f"{', expires ' + info.expires if info.expires else ''}: copy it now, it is not "
                                   "shown again", markup=False, highlight=False)


@tokens_app.command("list")
def list_tokens(ctx: typer.Context,
                user: Annotated[str | None, typer.Option("--user", metavar="USER", help="only this user's")] = None,
                as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Tokens (never their text): owner, scopes, expiry, last use."""
    with _store(ctx, home) as store:
        tokens = store.tokens(user)
    if as_json:
        print_json([{"id": t.id, "user": t.user, "label": t.label, "scopes": list(t.scopes), "created": t.created,
                     "expires": t.expires, "last_used": t.last_used, "revoked": t.revoked} for t in tokens])
        return
    table = Table("id", "user", "label", "scopes", "expires", "last used", "state")
    for t in tokens:
        table.add_row(t.id, escape(t.user), escape(t.label or ""), escape(" ".join(t.scopes) or "(role)"),
                      (t.expires or "never")[:19], (t.last_used or "never")[:19],
                      "revoked" if t.revoked else "active")
    cli_console().print(table)


@tokens_app.command("revoke")
def revoke(ctx: typer.Context, token_id: Annotated[str, typer.Argument(metavar="ID", help="as tokens list shows")],
           as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Revoke a token at once."""
    with _store(ctx, home, "access.token.revoke", token_id) as store:
        store.revoke_token(token_id)
    _done(as_json, {"id": token_id, "revoked": True}, f"revoked token {token_id}")


def _password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n") or None
    if sys.stdin.isatty():
        first = getpass.getpass("password (empty: tokens only): ")
        if first and getpass.getpass("again: ") != first:
            cli_console(stderr=True).print("error: the passwords differ", markup=False)
            raise typer.Exit(EXIT_INVALID)
        return first or None
    return None


def _done(as_json: bool, data: dict[str, object], text: str) -> None:
    if as_json:
        print_json(data)
    else:
        cli_console(stderr=True).print(text, markup=False, highlight=False)
