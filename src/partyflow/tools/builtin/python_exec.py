"""Python code execution in a child process with time, memory, file-system and network limits.

What it does (see `docs` in the tool's description and the package README for the honest version):

* **Process**: a fresh `python -I -S` (isolated mode: no user site, no `PYTHON*` variables, no site-packages) in
  its own session, with an environment holding no secrets, started in a private working folder.
* **Time**: `RLIMIT_CPU` (CPU seconds) inside, and a wall-clock timeout outside that kills the process group.
* **Memory**: `RLIMIT_AS` caps the address space; an allocation past it raises `MemoryError` in the child.
* **Files**: `RLIMIT_FSIZE` caps the size of any file written; an audit hook (`sys.addaudithook`) refuses opening
  for write, removing, renaming or chmod-ing anything outside the working folder. Reading is not confined.
* **Network**: when unprivileged user namespaces work (`unshare --user --net`, most Linux distributions), the child
  runs in an empty network namespace, which the kernel enforces. The audit hook also refuses creating sockets,
  starting processes and loading native code (ctypes) as a second layer.

The limits: an audit hook is not a security boundary. It stops well-meaning model code from doing harm by
accident; it does not stop a determined attacker who finds an interpreter path that raises no audit event (for
example a C extension module). Without the namespace, the hook is the only network barrier. For untrusted code
from untrusted users, run partyflow itself in a container or VM with no network and a read-only file system.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from partyflow.tools.base import Tool
from partyflow.tools.functions import function_tool

BOOT = Path(__file__).with_name("_sandbox_boot.py")


@dataclass(frozen=True)
class SandboxLimits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 5
    memory_bytes: int = 512 * 1024 * 1024
    file_bytes: int = 16 * 1024 * 1024
    output_bytes: int = 64 * 1024


@functools.cache
def namespace_prefix() -> tuple[str, ...]:
    """`unshare` arguments that give the child an empty network namespace, or () where the kernel refuses.

    Cached per process: whether user namespaces work does not change while we run.
    """
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return ()
    prefix = (unshare, "--user", "--map-root-user", "--net")
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return prefix if probe.returncode == 0 else ()


async def run_python(code: str, *, workdir: Path | None = None, limits: SandboxLimits = SandboxLimits(),
                     ) -> dict[str, object]:
    """Run `code` under `limits`; exit code, output (cut to `limits.output_bytes`), and whether it timed out."""
    owned = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="partyflow-code-")) if owned else Path(workdir)  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    prefix = await asyncio.to_thread(namespace_prefix)
    env = {"PATH": os.defpath, "LANG": "C.UTF-8", "HOME": str(folder), "TMPDIR": str(folder)}
    argv = [*prefix, sys.executable, "-I", "-S", "-c", BOOT.read_text(encoding="utf-8"),
            str(limits.memory_bytes), str(limits.cpu_seconds), str(limits.file_bytes)]
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=folder, env=env, start_new_session=True, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        timed_out = False
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(code.encode("utf-8")), limits.wall_seconds)
        except TimeoutError:
            timed_out = True
            _kill_group(process.pid)
            stdout, stderr = await process.communicate()
        finally:
            if process.returncode is None:
                _kill_group(process.pid)
                await process.wait()
        code_ = process.returncode
        return {
            "exit_code": code_, "timed_out": timed_out or code_ == -signal.SIGXCPU,
            "stdout": _cut(stdout, limits.output_bytes), "stderr": _cut(stderr, limits.output_bytes),
            "network": "namespace" if prefix else "audit-hook",
        }
    finally:
        if owned:
            shutil.rmtree(folder, ignore_errors=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _cut(data: bytes, limit: int) -> str:
    text = data[:limit].decode("utf-8", errors="replace")
    return text + (f"\n[... {len(data) - limit} more bytes cut]" if len(data) > limit else "")


def python_tool(*, workdir: Path | None = None, limits: SandboxLimits = SandboxLimits()) -> Tool:
    """A `run_python` tool; with `workdir`, files the code writes stay there between calls."""

    async def run_python_code(code: str) -> dict[str, object]:
        """Run a Python 3 program (standard library only) and return its exit code, stdout and stderr.
        Print what you want to see. No network, no subprocesses; files can be written in the current folder only.

        Args:
            code: The complete program.
        """
        return await run_python(code, workdir=workdir, limits=limits)

    return function_tool(run_python_code, name="run_python", timeout=limits.wall_seconds + 5)
