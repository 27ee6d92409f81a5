"""PF106: reading credentials and using the network.

A node that reads the one API key it is configured with and sends it to that API is the normal case and is not
flagged. Theft looks different: several secret environment variables or the whole environment, SSH keys, browser
profiles, wallets or cloud configs, read in a module that also talks to the network (high), or with the data
provably reaching a network call or a webhook (critical).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from partyflow.security.scanner import indicators as ind
from partyflow.security.scanner.model import Finding, Severity
from partyflow.security.scanner.pyfacts import CallFact, ModuleFacts, Scope, is_network_call
from partyflow.security.scanner.rules.base import PyContext, make

_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{3,}$")


def check(ctx: PyContext) -> Iterator[Finding]:
    facts = ctx.facts
    network = [c for c in facts.calls if is_network_call(c)]
    webhooks = [line for line, text in facts.strings if ind.WEBHOOK in ind.string_labels(text)]
    harvested = False
    for call in network:
        flow = _stolen_flow(call)
        if flow:
            harvested = True
            yield make(ctx, "PF106", Severity.CRITICAL, call.line, f"sends {flow} over the network")
    for scope in facts.scopes:
        what = _harvest(scope, facts)
        if not what:
            continue
        harvested = True
        line = _first_line(scope)
        if network or webhooks:
            severity = Severity.CRITICAL if webhooks else Severity.HIGH
            target = "a hard-coded webhook" if webhooks else "the network"
            yield make(ctx, "PF106", severity, line, f"reads {what} in a module that sends data to {target}")
        else:
            yield make(ctx, "PF106", Severity.MEDIUM, line, f"reads {what}")
    if webhooks and not harvested:
        yield make(ctx, "PF106", Severity.MEDIUM, webhooks[0],
                   "a hard-coded chat webhook or paste endpoint (a common drop box for stolen data)")
    for scope in facts.scopes:
        if scope.env_dumps and any(c.scope is scope for c in network) and not _harvest(scope, facts):
            yield make(ctx, "PF106", Severity.MEDIUM, scope.env_dumps[0],
                       "copies the whole environment in a function that uses the network")


def _stolen_flow(call: CallFact) -> str | None:
    labels = call.all_args
    if ind.CRED_PATH in labels:
        return "data from a credential store (keys, browser profile, wallet)"
    if ind.ENV_DUMP in labels:
        return "the whole environment (every secret in it)"
    if ind.SECRET_ENV in labels and len(call.scope.secret_env_keys) > 1:
        keys = ", ".join(sorted(call.scope.secret_env_keys))
        return f"several secret environment variables ({keys})"
    return None


def _harvest(scope: Scope, facts: ModuleFacts) -> str | None:
    if scope.cred_reads:
        places = sorted({text for _, text in scope.cred_reads})[:3]
        return "credential stores (" + ", ".join(repr(p) for p in places) + ")"
    keys = set(scope.secret_env_keys)
    if any(c.name in ("os.getenv", "os.environ.get") and c.node.args and not _is_literal(c.node.args[0])
           for c in scope.calls):
        keys |= {text for _, text in facts.strings if _ENV_NAME.match(text) and ind.is_secret_env_name(text)}
    if len(keys) > 1:
        return f"{len(keys)} secret environment variables ({', '.join(sorted(keys)[:4])})"
    return None


def _first_line(scope: Scope) -> int:
    lines = [line for line, _ in scope.cred_reads] + list(scope.secret_env_keys.values())
    lines += [c.line for c in scope.calls if c.name in ("os.getenv", "os.environ.get")]
    return min(lines) if lines else 1


def _is_literal(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant)
