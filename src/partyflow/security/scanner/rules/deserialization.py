"""PF109 (code): loading pickles, which can run any code while loading.

torch.load(weights_only=True) and safetensors only rebuild tensors and are fine. torch.load without the argument is
safe on torch >= 2.6 (weights_only became the default) but unpickles on older versions: medium. Unpickling data
fetched from the network, or a blob embedded in the code, is critical: that is a payload. Unpickling a file or
bytes from elsewhere (a cache, a checkpoint, the pack's own worker process) is how many honest libraries work and a
vulnerability only when an attacker controls the data: medium.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from partyflow.security.scanner import indicators as ind
from partyflow.security.scanner.model import Finding, Severity
from partyflow.security.scanner.rules.base import PyContext, make

PICKLERS = frozenset({
    "pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.load", "cPickle.loads", "_pickle.load",
    "_pickle.loads", "dill.load", "dill.loads", "cloudpickle.load", "cloudpickle.loads", "joblib.load",
    "pandas.read_pickle", "jsonpickle.decode", "torch.serialization.load", "pickletools.dis",
})


def check(ctx: PyContext) -> Iterator[Finding]:
    for call in ctx.facts.calls:
        name = call.name
        from_network = ind.NETWORK in call.all_args | call.receiver
        if name in ("torch.load", "torch.serialization.load"):
            weights_only = call.keyword("weights_only")
            if isinstance(weights_only, ast.Constant) and weights_only.value is True:
                continue
            if from_network:
                yield make(ctx, "PF109", Severity.CRITICAL, call.line, "torch.load() of downloaded data without "
                           "weights_only=True: a crafted checkpoint runs code while loading")
            elif weights_only is None:
                yield make(ctx, "PF109", Severity.MEDIUM, call.line, "torch.load() without weights_only=True "
                           "unpickles on torch < 2.6; pass weights_only=True or use safetensors")
            else:
                yield make(ctx, "PF109", Severity.HIGH, call.line, "torch.load(weights_only=False) unpickles the "
                           "file: a crafted checkpoint runs code while loading")
            continue
        if name == "numpy.load":
            allow = call.keyword("allow_pickle")
            if isinstance(allow, ast.Constant) and allow.value is True:
                severity = Severity.CRITICAL if from_network else Severity.HIGH
                yield make(ctx, "PF109", severity, call.line, "numpy.load(allow_pickle=True) unpickles the file")
            continue
        if name in PICKLERS or (name.endswith(".Unpickler") and "pickle" in name):
            if name == "pickletools.dis":
                continue
            embedded = ind.DECODED in call.all_args or _literal_bytes(call.arg(0, "data"))
            if from_network or embedded:
                source = "downloaded data" if from_network else "a blob embedded in the code"
                yield make(ctx, "PF109", Severity.CRITICAL, call.line,
                           f"{name}() of {source}: the pickle is a payload that runs code while loading")
            else:
                yield make(ctx, "PF109", Severity.MEDIUM, call.line,
                           f"{name}() of a file or bytes: unpickling runs whatever code the data names, so whoever "
                           "can change that data runs code; prefer safetensors/JSON")


def _literal_bytes(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, bytes | str)
