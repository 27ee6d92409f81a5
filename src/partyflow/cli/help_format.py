"""Help text that reads like a Unix tool's: flags without placeholders, options with a word for their value.

Typer labels every parameter with its Python type (`--json <bool>`, `--set <list[str]>`, `{workflow}`), which
reads as noise to a newcomer. Rather than repeat a metavar on each of the hundred-odd parameters (and forget it on
the next one), the finished command tree is polished once: a flag shows nothing after its name, an argument shows
its name in upper case, and an option shows the metavar it declares or a word derived from its name.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape

# Options whose name alone does not say what kind of value they take.
_OPTION_WORDS = {
    "home": "DIR", "output": "FILE", "front_end_root": "DIR", "port": "PORT", "listen": "ADDRESS",
    "host": "HOST", "timeout": "SECONDS", "shutdown_grace": "SECONDS", "max_upload_mb": "MB", "limit": "N",
    "sequence": "N", "cache": "STRATEGY", "security_level": "LEVEL", "trusted_host": "HOST", "log_format": "FORMAT",
    "fmt": "FORMAT", "output_format": "FORMAT", "expires": "DURATION", "bundles": "BUNDLE", "sha256": "HEX",
}


def polish(command: Any) -> Any:
    """Rewrite the metavars of every parameter in a click/typer command tree, in place; returns the command.

    Help texts are escaped for Rich too: they are plain text that may hold brackets (`provider:NAME[/MODEL]`,
    `partyflow[mcp]`), which Rich's markup would swallow or refuse (a traceback instead of the help).
    """
    for attribute in ("help", "short_help"):
        if isinstance(getattr(command, attribute, None), str):
            setattr(command, attribute, escape(getattr(command, attribute)))
    for param in [*getattr(command, "params", ()), _help_option(command)]:
        if param is not None:
            _polish_param(param)
            if isinstance(getattr(param, "help", None), str):
                param.help = escape(param.help)
    for sub in getattr(command, "commands", {}).values():
        polish(sub)
    return command


def _help_option(command: Any) -> Any:
    """`--help` is made on first use; make it now (the command caches it) so it is polished like the rest."""
    from typer import _click

    return command.get_help_option(_click.Context(command, info_name=command.name))


def _polish_param(param: Any) -> None:
    if param.metavar is not None:
        return
    if getattr(param, "param_type_name", "") == "argument":
        word = param.name.upper()
        param.metavar = f"{word}..." if param.nargs != 1 else word
        # Typer brackets required arguments in the usage line (`run [OPTIONS] {WORKFLOW}`); show the bare word.
        param._usage_display_name = lambda: param.metavar if param.required else f"[{param.metavar}]"
    elif getattr(param, "is_flag", False):
        param.metavar = ""
    else:
        param.metavar = _OPTION_WORDS.get(param.name, param.name.removesuffix("_").upper())
