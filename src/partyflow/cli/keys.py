"""`partyflow keys generate|list|trust|revoke|export|sign|verify`: the home's signing keys and trusted keys.

`sign` and `verify` work on a catalog file in our format (the signature goes into the document) and on a pack
folder (a manifest of its file hashes and the signature go into `partyflow-signature.json`); bundles are signed
when they are created and checked by `partyflow bundle verify`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from partyflow.cli.common import EXIT_FAILED, EXIT_INVALID, HomeOption, YesOption, cli_console, print_json
from partyflow.cli.nodes_catalog import home_of

app = typer.Typer(help="Signing keys, trusted keys and signatures.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]
KeyOption = Annotated[str | None, typer.Option("--key", help="the signing key's name or id (default: the only "
                                                             "one this home holds)")]
Expires = Annotated[str | None, typer.Option("--expires", help="stop trusting the key after this ISO date")]


@contextlib.contextmanager
def failures(as_json: bool) -> Iterator[None]:
    """Manager errors become one message (with the refusal's reason) and exit 2 when refused, 1 when failed."""
    from partyflow.config import ConfigError
    from partyflow.manager.errors import ManagerError

    try:
        yield
    except ManagerError as exc:
        reason = getattr(exc, "reason", None)
        reason = getattr(reason, "value", reason)
        _fail(exc.message, exc.hint, str(reason) if reason else None, EXIT_INVALID if exc.user_error else EXIT_FAILED,
              as_json)
    except (ConfigError, PermissionError) as exc:
        _fail(str(exc), None, None, EXIT_INVALID, as_json)


def _fail(message: str, hint: str | None, reason: str | None, code: int, as_json: bool) -> None:
    if as_json:
        print_json({"ok": False, "error": message, "reason": reason, "hint": hint})
    else:
        extra = f"\n  hint: {escape(hint)}" if hint else ""
        cli_console(stderr=True).print(f"[bold red]error:[/] {escape(message)}{extra}", highlight=False)
    raise typer.Exit(code)


def _keyring(ctx: typer.Context, home: Path | None) -> Any:
    from partyflow.manager.keys import Keyring

    return Keyring(home_of(ctx, home))


@app.command("generate")
def generate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="a name for the key (who signs with it)", show_default=False)],
    expires: Expires = None,
    yes: YesOption = False,  # uniform --yes (issue 14 item 5): nothing is asked here
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Make an Ed25519 key pair: the private key stays in the home (0600), the public key is trusted here."""
    with failures(as_json):
        info = _keyring(ctx, home).generate(name, expires=expires)
    if as_json:
        print_json({"ok": True, **info.to_dict(), "export": info.export_line()})
        return
    cli_console().print(f"generated key [bold]{escape(info.name)}[/] ({info.key_id})", highlight=False)
    cli_console().print("share the public key with verifiers (partyflow keys trust):", highlight=False)
    typer.echo(info.export_line())


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """List the keys this home trusts, owns, and has revoked."""
    with failures(as_json):
        keys = _keyring(ctx, home).keys()
    if as_json:
        print_json([k.to_dict() for k in keys])
        return
    if not keys:
        cli_console().print("no keys: 'partyflow keys generate NAME' makes one, 'partyflow keys trust' adds one")
        return
    table = Table("name", "key id", "status", "private", "expires", "added")
    colors = {"trusted": "green", "expired": "yellow", "revoked": "red"}
    for k in keys:
        status = k.status()
        table.add_row(escape(k.name), k.key_id, f"[{colors[status]}]{status}[/]", "yes" if k.has_private else "",
                      k.expires or "", k.added)
    cli_console().print(table)


@app.command("trust")
def trust(
    ctx: typer.Context,
    public_key: Annotated[str, typer.Argument(metavar="KEY|FILE", show_default=False,
                                              help="an exported key line, a file holding one, or base64")],
    name: Annotated[str | None, typer.Option("--name", help="the name to trust it under")] = None,
    expires: Expires = None,
    force: Annotated[bool, typer.Option("--force", help="trust a key that was revoked here")] = False,
    yes: YesOption = False,  # uniform --yes (issue 14 item 5): nothing is asked here
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Trust a public key: catalogs, bundles and packs it signs will verify in this home."""
    with failures(as_json):
        info = _keyring(ctx, home).trust(public_key, name=name, expires=expires, force=force)
    if as_json:
        print_json({"ok": True, **info.to_dict()})
    else:
        cli_console().print(f"trusted [bold]{escape(info.name)}[/] ({info.key_id})", highlight=False)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(metavar="NAME|ID", show_default=False)],
    reason: Annotated[str, typer.Option("--reason", help="why (kept in the keyring)")] = "",
    yes: YesOption = False,  # uniform --yes (issue 14 item 5): nothing is asked here
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Stop trusting a key; anything it signed is refused from now on, with the reason 'revoked key'."""
    with failures(as_json):
        info = _keyring(ctx, home).revoke(key, reason=reason)
    if as_json:
        print_json({"ok": True, **info.to_dict()})
    else:
        cli_console().print(f"revoked [bold]{escape(info.name)}[/] ({info.key_id})", highlight=False)


@app.command("export")
def export(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(metavar="NAME|ID", show_default=False)],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to this file")] = None,
    home: HomeOption = None,
) -> None:
    """Print a key's public half as one line, for `partyflow keys trust` on other machines."""
    with failures(False):
        line = _keyring(ctx, home).export(key)
    if output is not None:
        output.write_text(line + "\n", encoding="utf-8")
    else:
        typer.echo(line)


@app.command("sign")
def sign(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="a catalog JSON file (our format), a snapshot file or a pack folder",
                                         show_default=False)],
    key: KeyOption = None,
    yes: YesOption = False,  # uniform --yes (issue 14 item 5): nothing is asked here
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Sign a catalog or a snapshot (in place) or a pack folder (writes partyflow-signature.json into it)."""
    from partyflow.manager import signing

    with failures(as_json):
        signer = _keyring(ctx, home).signer(key)
        if path.is_dir():
            written = signing.sign_pack(path, signer)
        else:
            from partyflow.manager.provenance import atomic_write_json

            snapshot = _read_snapshot(path)  # issue 14 item 3: snapshots signed for `env promote`
            document = snapshot if snapshot is not None else _read_catalog(path)
            atomic_write_json(path, signing.sign_snapshot(document, signer) if snapshot is not None
                              else signing.sign_catalog(document, signer))
            written = path
    if as_json:
        print_json({"ok": True, "signed": str(written), "key_id": signer.key_id, "key": signer.name})
    else:
        cli_console().print(f"signed {escape(str(written))} with {escape(signer.name)} ({signer.key_id})",
                        highlight=False)


@app.command("verify")
def verify(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="a catalog JSON file, a snapshot file or a signed pack folder", show_default=False)],
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Check a catalog's, a snapshot's or a pack's signature (and a pack's file hashes) against the trusted keys."""
    from partyflow.manager import signing

    with failures(as_json):
        keyring = _keyring(ctx, home)
        if path.is_dir():
            key = signing.verify_pack(path, keyring).key
            detail = "every file matches"
        elif (snapshot := _read_snapshot(path)) is not None:  # issue 14 item 3
            key = signing.verify_snapshot(snapshot, keyring, what=f"snapshot {path.name}").key
            detail = f"snapshot of {len(snapshot.get('packs', []))} pack(s)"
        else:
            trust_info = signing.verify_catalog(_read_catalog(path), keyring, require=True, channel=path.name)
            key = trust_info.signer
            detail = f"{trust_info.signed_entries} signed entries"
    if as_json:
        print_json({"ok": True, "key_id": key.key_id if key else None, "key": key.name if key else None,
                    "detail": detail})
    else:
        cli_console().print(f"[green]ok[/]: signed by {escape(key.name if key else '?')} "
                        f"({key.key_id if key else '?'}); {detail}", highlight=False)


def _read_snapshot(path: Path) -> dict[str, Any] | None:
    """A partyflow snapshot file's document, or None for anything else (left to the catalog reader)."""
    from partyflow.manager.snapshots import FORMAT

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def _read_catalog(path: Path) -> dict[str, Any]:
    from partyflow.manager.catalog import CatalogError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogError(f"{path}: cannot be read as JSON ({exc})", user_error=True) from None
    if not isinstance(data, dict) or not isinstance(data.get("custom_nodes"), list):
        raise CatalogError(f"{path}: not a catalog (expected an object with 'custom_nodes')", user_error=True)
    return data
