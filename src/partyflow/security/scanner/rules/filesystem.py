"""PF107 writes outside the pack and the home, PF108 persistence.

A pack's business is its own folder and partyflow's home (models, input, output). Writing into system locations or
installed packages changes other software; writing startup files, shell profiles, cron, services, Run keys or a
.pth file into site-packages makes code run again later, outside any workflow (the litellm 1.82.8 technique).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from partyflow.security.scanner import indicators as ind
from partyflow.security.scanner.model import Finding, Severity
from partyflow.security.scanner.pyfacts import CallFact
from partyflow.security.scanner.rules.base import PyContext, make

# function -> index of the argument that names the written path
_WRITE_FUNCS = {"open": 0, "io.open": 0, "codecs.open": 0, "shutil.copy": 1, "shutil.copy2": 1,
                "shutil.copyfile": 1, "shutil.copytree": 1, "shutil.move": 1, "os.rename": 1, "os.replace": 1,
                "os.renames": 1, "os.symlink": 1, "os.link": 1, "os.remove": 0, "os.unlink": 0, "shutil.rmtree": 0,
                "os.truncate": 0, "os.chown": 0}
_WRITE_METHODS = frozenset({"write_text", "write_bytes", "touch", "symlink_to", "hardlink_to", "unlink", "rmdir"})
_DELETE = frozenset({"os.remove", "os.unlink", "shutil.rmtree", "unlink", "rmdir"})
_REGISTRY = frozenset({"winreg.SetValueEx", "winreg.SetValue", "winreg.CreateKey", "winreg.CreateKeyEx",
                       "_winreg.SetValueEx"})


def check(ctx: PyContext) -> Iterator[Finding]:
    for call in ctx.facts.calls:
        if call.name in _REGISTRY:
            if ind.PERSIST_PATH in call.all_args:
                yield make(ctx, "PF108", Severity.HIGH, call.line, "adds a Windows Run key (starts at every login)")
            continue
        if call.name in ("crontab.CronTab", "python_crontab.CronTab"):
            yield make(ctx, "PF108", Severity.HIGH, call.line, "edits the user's crontab")
            continue
        target = _written_path(call)
        if target is None:
            continue
        yield from _judge(ctx, call, target)


def _written_path(call: CallFact) -> frozenset[str] | None:
    """Labels of the path a call writes (or deletes), None when the call writes nothing."""
    index = _WRITE_FUNCS.get(call.name)
    if index is not None:
        if call.name in ("open", "io.open", "codecs.open") and not _write_mode(call.arg(1, "mode")):
            return None
        return call.arg_labels(index, "dst" if index else "file")
    if call.method in _WRITE_METHODS and (call.name.startswith(("?.", "pathlib.Path"))):
        return call.receiver
    if call.method == "open" and call.name.startswith(("?.", "pathlib.Path")) and ind.PARAM not in call.receiver \
            and _write_mode(call.arg(0, "mode")):
        return call.receiver
    if call.method in ("rename", "replace") and call.name.startswith(("?.", "pathlib.Path")) \
            and len(call.node.args) + len(call.node.keywords) == 1:
        # Path.rename/replace take one target; str.replace(old, new) takes two (`s.replace("~", "~0")`, the JSON
        # pointer escape, is text, not a file)
        return call.arg_labels(0, "target")
    return None


def _write_mode(mode: ast.expr | None) -> bool:
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and any(c in mode.value for c in "wax+")


def _judge(ctx: PyContext, call: CallFact, path: frozenset[str]) -> Iterator[Finding]:
    content = call.all_args | call.receiver
    verb = "deletes" if call.name in _DELETE or call.method in _DELETE else "writes"
    if ind.PTH_NAME in path and ind.SITE_PACKAGES in path:
        yield make(ctx, "PF108", Severity.CRITICAL, call.line,
                   "writes a .pth file into site-packages: its import lines run at every Python start")
    elif ind.PERSIST_PATH in path:
        severity = Severity.CRITICAL if content & {ind.DECODED, ind.NETWORK} else Severity.HIGH
        yield make(ctx, "PF108", severity, call.line,
                   f"{verb} a startup file, shell profile, cron or service entry: code that runs again later")
    elif ind.SITE_PACKAGES in path:
        yield make(ctx, "PF107", Severity.HIGH, call.line, f"{verb} inside site-packages (other installed software)")
    elif ind.OUTSIDE_PATH in path:
        yield make(ctx, "PF107", Severity.HIGH, call.line, f"{verb} a system location outside the pack and the home")
    elif ind.CRED_PATH in path:
        yield make(ctx, "PF107", Severity.HIGH, call.line, f"{verb} in a credential store (SSH, browser, wallet)")
    elif ind.USER_HOME in path and ind.TEMP not in path:
        yield make(ctx, "PF107", Severity.MEDIUM, call.line,
                   f"{verb} in the user's home directory, outside the pack and partyflow's home")
