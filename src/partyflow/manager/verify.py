"""Check a pack the way the host will load it, in a child process: before activating it, and for `nodes doctor`.

Importing runs the pack's code; doing it in a subprocess (with a timeout) means a pack that crashes, hangs,
calls `sys.exit` or patches modules cannot harm the manager or leave anything behind in it.
Run as `python -m partyflow.manager.verify PACK_PATH HOME [TIMEOUT]`; prints one JSON line after a marker.

With `sandboxed=True` (what `nodes doctor` uses) the child runs in the OS sandbox (`partyflow.security.sandbox`):
no network, a read-only file system but for a throwaway folder, a throwaway home instead of the real one, nothing
of the real home visible. A pack that runs `pip install`/`apt-get` or writes files at import changes nothing; an
audit hook in the child reports what it tried (`Verified.attempts`). The hook only observes: the sandbox is the
boundary, so a pack that silences the hook still cannot change anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from partyflow.manager.errors import ManagerError

__all__ = ["Attempt", "VerifyError", "VerifyFailed", "Verified", "verify_pack"]

MARKER = "PARTYFLOW-VERIFY-RESULT "
EVENT = "PARTYFLOW-VERIFY-EVENT "
PACKAGE_TOOLS = frozenset({"pip", "pip3", "uv", "apt", "apt-get", "dpkg", "conda", "mamba", "npm", "yum", "dnf",
                           "apk", "brew", "easy_install", "poetry"})


class VerifyError(ManagerError):
    """The staged pack is not a loadable pack; it was not installed."""


@dataclass(frozen=True)
class Attempt:
    """Something a pack tried while it was imported in the sandbox: `kind` process, network or write."""

    kind: str
    detail: str
    package_manager: bool = False

    def describe(self) -> str:
        what = {"process": "started a process", "network": "tried the network",
                "write": "tried to write"}.get(self.kind, self.kind)
        return f"{what}: {self.detail}" + (" (a package manager)" if self.package_manager else "")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "package_manager": self.package_manager}


@dataclass(frozen=True)
class Verified:
    node_types: tuple[str, ...]
    seconds: float
    attempts: tuple[Attempt, ...] = ()


class VerifyFailed(VerifyError):
    """The pack did not load; `attempts` is what it tried meanwhile (sandboxed checks only)."""

    def __init__(self, message: str, *, pack: str, attempts: tuple[Attempt, ...] = ()) -> None:
        super().__init__(message, pack=pack)
        self.attempts = attempts


def verify_pack(path: Path, home_root: Path, *, timeout: float = 60.0, sandboxed: bool = False,
                venv: Path | None = None) -> Verified:
    """Refuse a pack without `__init__.py` (or a single .py), or one that does not import and export
    NODE_CLASS_MAPPINGS. `sandboxed`: import it in the OS sandbox (see the module docstring); raises
    `SandboxUnavailable` where there is none. `venv` (sandboxed only): the pack's own environment (an isolated
    pack), whose Python then imports it."""
    name = path.stem if path.is_file() else path.name
    if path.is_dir() and not (path / "__init__.py").is_file():
        raise VerifyError(f"{name}: not a node pack: the folder has no __init__.py", pack=name,
                          hint="a pack is a folder with __init__.py exporting NODE_CLASS_MAPPINGS, or one .py file")
    if path.is_file() and path.suffix != ".py":
        raise VerifyError(f"{name}: not a node pack: {path.name} is not a .py file", pack=name)
    if sandboxed:
        return _verify_sandboxed(path, name, home_root, timeout, venv)
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


def _verify_sandboxed(path: Path, name: str, home_root: Path, timeout: float, venv: Path | None) -> Verified:
    import partyflow
    from partyflow.nodes.isolation.environment import python_of
    from partyflow.security.sandbox import Limits, SandboxSpec, python_binds, run_sync

    source = Path(partyflow.__file__).resolve().parent.parent  # so the child imports this very partyflow
    limits = Limits(wall_seconds=timeout + 10, cpu_seconds=int(timeout) + 5, memory_bytes=None,
                    file_bytes=256 * 1024 * 1024, open_files=1024, output_bytes=1024 * 1024, processes=True)
    with tempfile.TemporaryDirectory(prefix="partyflow-doctor-") as scratch:
        extra = (venv.resolve(),) if venv is not None else ()
        spec = SandboxSpec(scratch=Path(scratch), limits=limits, proc=True, protected=(home_root,),
                           read_only=(*python_binds(site_packages=True, protected=(home_root,)), source,
                                      path.resolve(), *extra),
                           env={"PYTHONPATH": str(source), "PYTHONDONTWRITEBYTECODE": "1"})
        python = str(python_of(venv)) if venv is not None else sys.executable
        done = run_sync([python, "-m", "partyflow.manager.verify", "--sandboxed", str(path.resolve()),
                         str(timeout)], spec)
    stdout = done.stdout.decode("utf-8", "replace")
    attempts = _attempts(stdout)
    if done.timed_out:
        raise VerifyFailed(f"{name}: importing the pack did not finish within {timeout:g} seconds", pack=name,
                           attempts=attempts)
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        tail = (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["(no output)"])[-1]
        raise VerifyFailed(f"{name}: importing the pack killed the checker (exit {done.exit_code}): {tail}",
                           pack=name, attempts=attempts)
    result = json.loads(lines[-1][len(MARKER):])
    if not result["ok"]:
        raise VerifyFailed(f"{name}: the pack does not load: {result['error']}", pack=name, attempts=attempts)
    return Verified(tuple(result["node_types"]), float(result["seconds"]), attempts)


def _attempts(stdout: str) -> tuple[Attempt, ...]:
    seen: dict[tuple[str, str], Attempt] = {}
    for line in stdout.splitlines():
        if not line.startswith(EVENT):
            continue
        try:
            event = json.loads(line[len(EVENT):])
            attempt = Attempt(str(event["kind"]), str(event["detail"])[:500], bool(event.get("package_manager")))
        except (ValueError, KeyError, TypeError):
            continue
        seen.setdefault((attempt.kind, attempt.detail), attempt)
    return tuple(seen.values())[:100]


def _observe(out_fd: int, scratch: str) -> None:
    """Install the audit hook that reports (never blocks) processes, network use and writes outside `scratch`."""

    def report(kind: str, detail: str, package_manager: bool = False) -> None:
        line = EVENT + json.dumps({"kind": kind, "detail": detail, "package_manager": package_manager}) + "\n"
        try:
            os.write(out_fd, line.encode("utf-8", "replace"))
        except OSError:
            pass

    def outside(raw: Any) -> str | None:
        if isinstance(raw, int) or raw is None:
            return None
        target = os.path.abspath(os.fsdecode(raw))
        if target == scratch or target.startswith((scratch + os.sep, "/dev/", "/proc/")):
            return None
        return target

    def uses_package_manager(text: str) -> bool:  # "pip install x", "sh -c 'apt-get ...'", "python -m pip ..."
        for separator in (";", "&&", "||", "|", "'", '"'):
            text = text.replace(separator, " ")
        return bool({os.path.basename(token) for token in text.split()} & PACKAGE_TOOLS)

    def command(args: Any) -> tuple[str, bool]:
        words = [os.fsdecode(a) for a in args] if isinstance(args, (list, tuple)) else [os.fsdecode(args)]
        text = " ".join(words)
        return text[:500], uses_package_manager(text)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        try:
            if event in ("subprocess.Popen", "os.exec", "os.posix_spawn"):
                report("process", *command(args[1]))
            elif event == "os.system":
                text = os.fsdecode(args[0])
                report("process", text[:500], uses_package_manager(text))
            elif event == "socket.connect":
                report("network", f"connect to {args[1]!r}")
            elif event == "socket.getaddrinfo":
                report("network", f"look up {args[0]!r}")
            elif event == "open" and (args[2] or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND) \
                    or event == "open" and any(c in (args[1] or "") for c in "wax+"):
                if (where := outside(args[0])) is not None:
                    report("write", f"{where} (refused: read-only in the check)")
            elif event in ("os.remove", "os.rmdir", "os.mkdir", "os.rename", "os.replace", "shutil.rmtree",
                           "os.chmod", "os.symlink", "os.link", "os.truncate"):
                if (where := outside(args[0])) is not None:
                    report("write", f"{event.split('.')[-1]} {where} (refused: read-only in the check)")
        except Exception:  # noqa: S110 - an observer must never break the import it observes
            pass

    sys.addaudithook(hook)


def _sandboxed_main(argv: list[str]) -> None:
    """The child of a sandboxed check: a throwaway home in the scratch folder, the hook, then the import."""
    from partyflow.config import Home
    from partyflow.nodes.host import HostContext
    from partyflow.nodes.loader import load_pack
    from partyflow.nodes.registry import NodeRegistry

    path, timeout = Path(argv[0]), float(argv[1]) if len(argv) > 1 else 60.0
    scratch = os.getcwd()
    home = Home(Path(scratch) / "home")
    home.root.mkdir(exist_ok=True)
    out_fd = os.dup(1)  # the pack may replace sys.stdout; reports go to the real one
    _observe(out_fd, scratch)
    result = load_pack(path, HostContext(home=home, registry=NodeRegistry()), timeout=timeout)
    payload = {"ok": result.ok, "error": result.error, "node_types": list(result.node_types),
               "seconds": result.seconds}
    os.write(out_fd, ("\n" + MARKER + json.dumps(payload) + "\n").encode("utf-8"))
    os._exit(0)


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
    if sys.argv[1:2] == ["--sandboxed"]:
        _sandboxed_main(sys.argv[2:])
    else:
        _main(sys.argv[1:])
