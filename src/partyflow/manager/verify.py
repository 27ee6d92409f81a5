"""Check a staged pack the way the host will load it, in a child process, before it is activated.

Importing runs the pack's code; doing it in a subprocess (with a timeout) means a pack that crashes, hangs,
calls `sys.exit` or patches modules cannot harm the manager or leave anything behind in it.
Run as `python -m partyflow.manager.verify PACK_PATH HOME [TIMEOUT]`; prints one JSON line after a marker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from partyflow.manager.errors import ManagerError

__all__ = ["VerifyError", "Verified", "verify_pack"]

MARKER = "PARTYFLOW-VERIFY-RESULT "


class VerifyError(ManagerError):
    """The staged pack is not a loadable pack; it was not installed."""


@dataclass(frozen=True)
class Verified:
    node_types: tuple[str, ...]
    seconds: float


def verify_pack(path: Path, home_root: Path, *, timeout: float = 60.0) -> Verified:
    """Refuse a pack without `__init__.py` (or a single .py), or one that does not import and export
    NODE_CLASS_MAPPINGS."""
    name = path.stem if path.is_file() else path.name
    if path.is_dir() and not (path / "__init__.py").is_file():
        raise VerifyError(f"{name}: not a node pack: the folder has no __init__.py", pack=name,
                          hint="a pack is a folder with __init__.py exporting NODE_CLASS_MAPPINGS, or one .py file")
    if path.is_file() and path.suffix != ".py":
        raise VerifyError(f"{name}: not a node pack: {path.name} is not a .py file", pack=name)
    command = [sys.executable, "-m", "partyflow.manager.verify", str(path), str(home_root), str(timeout)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 10, cwd=home_root,
                              stdin=subprocess.DEVNULL, start_new_session=True)
    except subprocess.TimeoutExpired:
        raise VerifyError(f"{name}: importing the pack did not finish within {timeout:g} seconds",
                          pack=name) from None
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise VerifyError(f"{name}: importing the pack killed the checker (exit {done.returncode}): {tail}",
                          pack=name)
    result = json.loads(lines[-1][len(MARKER):])
    if not result["ok"]:
        raise VerifyError(f"{name}: the pack does not load: {result['error']}", pack=name)
    return Verified(tuple(result["node_types"]), float(result["seconds"]))


def _main(argv: list[str]) -> None:
    from partyflow.config import Home
    from partyflow.nodes.host import HostContext
    from partyflow.nodes.loader import load_pack
    from partyflow.nodes.registry import NodeRegistry

    path, home, timeout = Path(argv[0]), Home(Path(argv[1])), float(argv[2]) if len(argv) > 2 else 60.0
    result = load_pack(path, HostContext(home=home, registry=NodeRegistry()), timeout=timeout)
    payload = {"ok": result.ok, "error": result.error, "node_types": list(result.node_types),
               "seconds": result.seconds}
    sys.stdout.write("\n" + MARKER + json.dumps(payload) + "\n")
    sys.stdout.flush()
    os._exit(0)  # threads a pack left running must not keep the checker alive


if __name__ == "__main__":
    _main(sys.argv[1:])
