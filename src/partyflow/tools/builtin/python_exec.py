"""Python code execution in the OS sandbox (`partyflow.security.sandbox`): the Python Code Tool's engine.

Each call starts a fresh `python -I -S` (isolated mode: standard library only, no `PYTHON*` variables) inside
bubblewrap: its own user, PID, IPC, UTS and (empty) network namespaces; a read-only file system holding only
the Python installation and system libraries; the work folder read-write at `/scratch` (the current directory,
`$HOME` and `$TMPDIR`); no `/proc`; no process creation (seccomp); address-space, CPU, file-size and open-file
limits; a wall-clock timeout that kills the whole sandbox; output cut at a size. The environment is empty but for
`PATH`, `LANG`, `HOME` and `TMPDIR`, so no secret reaches the code.

Where the sandbox is unavailable (no bubblewrap, no user namespaces), the tool refuses to run; it never falls
back to something weaker. The tool returns the refusal to the model like any tool error.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from partyflow.security.sandbox import Limits, SandboxError, SandboxSpec, python_binds, run
from partyflow.tools.base import Tool, ToolError
from partyflow.tools.functions import function_tool

BOOT = Path(__file__).with_name("_sandbox_boot.py")


@dataclass(frozen=True)
class SandboxLimits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 5
    memory_bytes: int = 512 * 1024 * 1024
    file_bytes: int = 16 * 1024 * 1024
    output_bytes: int = 64 * 1024

    def to_limits(self) -> Limits:
        return Limits(wall_seconds=self.wall_seconds, cpu_seconds=self.cpu_seconds, memory_bytes=self.memory_bytes,
                      file_bytes=self.file_bytes, output_bytes=self.output_bytes, processes=False)


async def run_python(code: str, *, workdir: Path | None = None, limits: SandboxLimits = SandboxLimits(),
                     ) -> dict[str, object]:
    """Run `code` in the sandbox; exit code, output (cut to `limits.output_bytes`), and whether it timed out.

    Raises `SandboxUnavailable` where the OS sandbox cannot run (the caller refuses; nothing ran).
    """
    with tempfile.TemporaryDirectory(prefix="partyflow-code-") as owned:
        folder = Path(workdir) if workdir is not None else Path(owned)
        binds = python_binds(site_packages=False)
        spec = SandboxSpec(scratch=folder, limits=limits.to_limits(), read_only=binds)
        result = await run([_python(), "-I", "-S", "-c", BOOT.read_text(encoding="utf-8")], spec,
                           stdin=code.encode("utf-8"))
    signalled = result.killed_by
    return {
        "exit_code": result.exit_code,
        "timed_out": result.timed_out or signalled == signal.SIGXCPU.name,
        "stdout": _text(result.stdout, result.stdout_dropped),
        "stderr": _text(result.stderr, result.stderr_dropped),
    }


def _python() -> str:
    """The base interpreter (not a virtual environment's link to it): -I -S needs nothing else."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _text(data: bytes, dropped: int) -> str:
    text = data.decode("utf-8", errors="replace")
    return text + (f"\n[... {dropped} more bytes cut]" if dropped else "")


def python_tool(*, workdir: Path | None = None, limits: SandboxLimits = SandboxLimits(),
                guard: Callable[[], None] | None = None) -> Tool:
    """A `run_python` tool; with `workdir`, files the code writes stay there between calls. `guard` runs before
    each call and refuses it by raising (PermissionError): the security policy's check, asked at call time."""

    async def run_python_code(code: str) -> dict[str, object]:
        """Run a Python 3 program (standard library only) and return its exit code, stdout and stderr.
        Print what you want to see. No network, no subprocesses; files can be written in the current folder only.

        Args:
            code: The complete program.
        """
        try:
            if guard is not None:
                guard()
            return await run_python(code, workdir=workdir, limits=limits)
        except (SandboxError, PermissionError) as exc:
            raise ToolError(str(exc)) from None

    return function_tool(run_python_code, name="run_python", timeout=limits.wall_seconds + 15)
