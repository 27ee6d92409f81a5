"""The one boundary for untrusted code: a separate process under bubblewrap, seccomp and resource limits.

Everything partyflow runs on behalf of someone it does not fully trust (the Python Code Tool's programs, the
import check of `nodes doctor`) goes through `run()` here. The kernel enforces each part; nothing depends on the
sandboxed program behaving:

* **Namespaces** (bubblewrap): new user, PID, IPC, UTS and cgroup namespaces, and a new, empty network namespace
  unless the caller asks for network. The file system is a fresh root holding read-only binds of the system
  libraries (`/usr`, ...) and of the Python the program needs, `/dev` with the harmless devices, the scratch
  folder read-write at `/scratch`, and nothing else: no home, no partyflow home, no `/tmp`, no `/run`, no `/proc`
  unless asked. The root is remounted read-only. Capabilities are dropped, the process gets a new session (no
  TIOCSTI into our terminal), and it dies with its parent.
* **seccomp** (`partyflow.security.seccomp`): no ptrace, mount, namespaces, keyrings, BPF, io_uring...; and, unless
  the caller allows processes, no `fork`/`clone` except threads.
* **Limits** (`prlimit`, inherited by everything inside): address space, CPU seconds, file size, open files,
  no core dumps; a wall-clock timeout outside kills the whole sandbox; stdout and stderr are cut at a size.
* **Nothing inherited**: the environment is cleared (only what the caller passes is set), and no file descriptor
  but the three standard ones reaches the program.
* Files in the scratch folder with more than one hard link are bound read-only over themselves, so a hard link
  placed there cannot be used to write to a file elsewhere. No set-user-ID/set-group-ID file can be made there
  (seccomp), and any found after a run loses those bits. Symbolic links resolve inside the sandbox, where
  nothing outside the scratch folder is writable.

When bubblewrap, `prlimit`, user namespaces or the seccomp table are missing, `check()` raises
`SandboxUnavailable` with the reason and callers refuse to run: there is no weaker fallback.
See docs/security.md for why bubblewrap and not Landlock, nsjail or a WebAssembly Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import platform
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from partyflow.security.seccomp import UnsupportedArchitecture, program

__all__ = ["SCRATCH", "Limits", "SandboxError", "SandboxResult", "SandboxSpec", "SandboxUnavailable", "check",
           "environment", "python_binds", "run", "run_sync", "wrap"]

SCRATCH = "/scratch"  # where the scratch folder appears inside; also the working directory and $HOME
MAX_SCRATCH_ENTRIES = 20_000  # files and folders walked to find hard links; beyond it the run is refused
_SYSTEM_READ_ONLY = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")
_NETWORK_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/ssl", "/etc/ca-certificates",
                  "/etc/gai.conf", "/etc/host.conf")
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap) "
                "and allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 or "
                "user.max_user_namespaces > 0); in a container, run it with seccomp/AppArmor profiles that allow "
                "creating user namespaces")


class SandboxError(RuntimeError):
    """The sandbox cannot run this request (a bad spec, a scratch folder it will not expose)."""


class SandboxUnavailable(SandboxError):
    """The OS sandbox is not available here; untrusted code is refused rather than run less confined."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. `processes`: whether the program may start other processes at all."""

    wall_seconds: float = 10.0
    cpu_seconds: int = 5
    memory_bytes: int | None = 512 * 1024 * 1024  # RLIMIT_AS; None: unlimited (large native libraries)
    file_bytes: int = 16 * 1024 * 1024            # RLIMIT_FSIZE: the largest file it may write
    open_files: int = 64
    output_bytes: int = 64 * 1024                 # per stream; the rest is dropped (and counted)
    processes: bool = False


@dataclass(frozen=True)
class SandboxSpec:
    """What one run may see. `read_only`: extra host paths bound read-only at their own path."""

    scratch: Path
    limits: Limits = field(default_factory=Limits)
    read_only: tuple[Path, ...] = ()
    network: bool = False
    proc: bool = False          # mount a /proc of the sandbox's own PID namespace (some libraries read it)
    env: Mapping[str, str] = field(default_factory=dict)
    protected: tuple[Path, ...] = ()  # host paths that must not become visible (the partyflow home...)


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    stdout_dropped: int = 0
    stderr_dropped: int = 0

    @property
    def killed_by(self) -> str | None:
        """The signal that ended the program ("SIGXCPU", "SIGKILL"), if one did."""
        if self.exit_code < 0:
            return signal.Signals(-self.exit_code).name
        if self.exit_code > 128 and self.exit_code - 128 in signal.valid_signals():
            return signal.Signals(self.exit_code - 128).name  # bubblewrap's PID 1 reports it so
        return None


@functools.cache
def _probe() -> str | None:
    """Why the sandbox cannot run here, or None. Cached: the answer does not change while we run."""
    if not sys.platform.startswith("linux"):
        return f"the code sandbox needs Linux namespaces; this is {sys.platform}"
    for tool in ("bwrap", "prlimit"):
        if shutil.which(tool, path=os.defpath + ":/usr/sbin:/sbin") is None:
            return f"{tool!r} was not found"
    try:
        filter_ = program(processes=False)
    except UnsupportedArchitecture as exc:
        return str(exc)
    filter_fd = os.memfd_create("partyflow-seccomp-probe", os.MFD_CLOEXEC)
    try:  # the probe uses the real filter, so a kernel without seccomp filters is found here, not at run time
        os.write(filter_fd, filter_)
        os.lseek(filter_fd, 0, os.SEEK_SET)
        argv = [_which("bwrap"), "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
                *_system_links(), "--seccomp", str(filter_fd), "--", "true"]
        done = subprocess.run(argv, capture_output=True, timeout=20, check=False, stdin=subprocess.DEVNULL,
                              pass_fds=(filter_fd,))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not start ({exc})"
    finally:
        os.close(filter_fd)
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bubblewrap cannot create namespaces here ({detail[-1] if detail else f'exit {done.returncode}'})"
    return None


def check() -> None:
    """Raise `SandboxUnavailable` (with what to install or allow) when sandboxed runs are impossible here."""
    reason = _probe()
    if reason is not None:
        raise SandboxUnavailable(f"untrusted code cannot run: the OS sandbox is unavailable: {reason}; "
                                 f"{INSTALL_HINT}")


def _which(tool: str) -> str:
    found = shutil.which(tool, path=os.defpath + ":/usr/sbin:/sbin")
    if found is None:
        raise SandboxUnavailable(f"{tool!r} was not found; {INSTALL_HINT}")
    return found


def _system_links() -> list[str]:
    """`/bin`, `/lib`... as on the host: a symlink where it is one (merged /usr), else a read-only bind."""
    args: list[str] = []
    for path in _SYSTEM_READ_ONLY[1:]:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def python_binds(*, site_packages: bool, protected: Iterable[Path] = ()) -> tuple[Path, ...]:
    """The host folders the running Python needs inside the sandbox: its installation, and with
    `site_packages` the virtual environment and the folders on `sys.path` (partyflow's source...). A `sys.path`
    entry that would expose the home directory or a `protected` path (the current directory, often) is left out."""
    wanted = {Path(sys.base_prefix).resolve(), Path(os.path.realpath(_base_executable())).parent}
    if site_packages:
        wanted.add(Path(sys.prefix).resolve())
        for entry in sys.path:
            if entry and os.path.isdir(entry):
                try:
                    _guard([Path(entry)], protected)
                except SandboxError:
                    continue
                wanted.add(Path(entry).resolve())
    return _outermost(wanted)


def _base_executable() -> str:
    return getattr(sys, "_base_executable", None) or sys.executable


def _outermost(paths: Iterable[Path]) -> tuple[Path, ...]:
    kept: list[Path] = []
    for path in sorted(set(paths), key=lambda p: len(p.parts)):
        if not any(path == k or k in path.parents for k in kept):
            kept.append(path)
    return tuple(kept)


def _guard(paths: Iterable[Path], protected: Iterable[Path]) -> None:
    """Refuse to expose a folder that contains the home directory, the partyflow home or another protected path."""
    guarded = [Path(p).resolve() for p in protected]
    with contextlib.suppress(RuntimeError, KeyError):  # no home directory known: nothing to add
        guarded.append(Path.home().resolve())
    for path in paths:
        resolved = path.resolve()
        if resolved == Path("/"):
            raise SandboxError("refusing to expose the whole file system to the sandbox")
        for secret in guarded:
            if resolved == secret or resolved in secret.parents:
                raise SandboxError(f"refusing to expose {resolved} to the sandbox: it contains {secret}")


def _hard_links(scratch: Path) -> list[str]:
    """Paths (relative to `scratch`) of regular files with other names elsewhere: bound read-only."""
    found: list[str] = []
    seen = 0
    for folder, dirs, files in os.walk(scratch):
        seen += len(dirs) + len(files)
        if seen > MAX_SCRATCH_ENTRIES:
            raise SandboxError(f"the scratch folder {scratch} holds more than {MAX_SCRATCH_ENTRIES} entries; "
                               "clear it before running code there")
        for name in files:
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                info = os.lstat(path)
                if info.st_nlink > 1 and not os.path.islink(path):
                    found.append(os.path.relpath(path, scratch))
    return found


def environment(spec: SandboxSpec) -> dict[str, str]:
    """The whole environment of the sandboxed program: a few neutral variables and what the caller passes."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": SCRATCH, "TMPDIR": SCRATCH,
            **spec.env}


def command(spec: SandboxSpec, argv: list[str], seccomp_fd: int, *, env_in_argv: bool = True) -> list[str]:
    """The full command line: `prlimit` (limits inherited by everything inside) around `bwrap` around `argv`.

    `env_in_argv=False`: the caller starts it with exactly `environment(spec)` instead (values such as secrets
    then never appear in the process list)."""
    limits = spec.limits
    scratch = spec.scratch.resolve()
    _guard(spec.read_only, spec.protected)
    _guard([scratch], spec.protected)
    rlimits = [f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}", f"--fsize={limits.file_bytes}",
               f"--nofile={limits.open_files}", "--core=0"]
    if limits.memory_bytes is not None:
        rlimits.append(f"--as={limits.memory_bytes}")
    bwrap = [_which("bwrap"), "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
             "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--hostname",
             "sandbox"]
    if not spec.network:
        bwrap.append("--unshare-net")
    bwrap += ["--ro-bind", "/usr", "/usr", *_system_links()]
    for path in _SYSTEM_FILES + (_NETWORK_FILES if spec.network else ()):
        bwrap += ["--ro-bind-try", path, path]
    bwrap += ["--dev", "/dev"]
    if spec.proc:
        bwrap += ["--proc", "/proc"]
    for path in _outermost(p.resolve() for p in spec.read_only):
        bwrap += ["--ro-bind", str(path), str(path)]
    bwrap += ["--bind", str(scratch), SCRATCH]
    for relative in _hard_links(scratch):
        bwrap += ["--ro-bind", str(scratch / relative), f"{SCRATCH}/{relative}"]
    if env_in_argv:
        bwrap.append("--clearenv")
        for key, value in environment(spec).items():
            bwrap += ["--setenv", key, value]
    bwrap += ["--chdir", SCRATCH, "--remount-ro", "/", "--seccomp", str(seccomp_fd), "--"]
    return [_which("prlimit"), *rlimits, "--", *bwrap, *argv]


async def run(argv: list[str], spec: SandboxSpec, *, stdin: bytes = b"") -> SandboxResult:
    """Run `argv` (paths as seen inside) in the sandbox; refuses with `SandboxUnavailable` where there is none."""
    await asyncio.to_thread(check)
    spec.scratch.mkdir(parents=True, exist_ok=True)
    filter_fd = os.memfd_create("partyflow-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(filter_fd, program(processes=spec.limits.processes, machine=platform.machine()))
        os.lseek(filter_fd, 0, os.SEEK_SET)
        line = await asyncio.to_thread(command, spec, argv, filter_fd)
        process = await asyncio.create_subprocess_exec(
            *line, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={"PATH": os.defpath, "LANG": "C.UTF-8"}, pass_fds=(filter_fd,), start_new_session=True, cwd="/")
    finally:
        os.close(filter_fd)
    try:
        return await _supervise(process, stdin, spec.limits)
    finally:
        await asyncio.to_thread(_clear_set_id_bits, spec.scratch)


def _clear_set_id_bits(scratch: Path) -> None:
    """Second layer behind seccomp (which refuses setting them): no set-user-ID/set-group-ID file stays in the
    scratch folder, where it would run with the host user's identity for anyone who can reach the folder."""
    seen = 0
    for folder, dirs, files in os.walk(scratch):
        seen += len(dirs) + len(files)
        if seen > MAX_SCRATCH_ENTRIES:
            return
        for name in files:
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                if not os.lstat(path).st_mode & (stat.S_ISUID | stat.S_ISGID):
                    continue
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # never a link's target
                try:
                    mode = os.fstat(fd).st_mode
                    if stat.S_ISREG(mode):
                        os.fchmod(fd, stat.S_IMODE(mode) & ~(stat.S_ISUID | stat.S_ISGID))
                finally:
                    os.close(fd)


_FD_PLACEHOLDER = "@PARTYFLOW-SECCOMP-FD@"
_LAUNCHER = """
import os, sys
fd = os.memfd_create("partyflow-seccomp", 0)
os.write(fd, bytes.fromhex(sys.argv[1]))
os.lseek(fd, 0, os.SEEK_SET)
argv = sys.argv[3:]
argv[argv.index(sys.argv[2])] = str(fd)  # the first one: bubblewrap's --seccomp, before the sandboxed command
os.execv(argv[0], argv)
"""


def wrap(argv: list[str], spec: SandboxSpec) -> tuple[list[str], dict[str, str]]:
    """A command line, and the exact environment to start it with, that runs `argv` in the sandbox: for callers
    that start the process themselves (the MCP SDK's stdio client) and so cannot pass the seccomp filter's file
    descriptor. A tiny launcher (this Python in isolated mode) puts the filter in a memfd and executes the sandbox
    with it. The caller owns the lifetime: `spec.limits.wall_seconds` is not enforced here (CPU time is)."""
    check()
    spec.scratch.mkdir(parents=True, exist_ok=True)
    line = command(spec, argv, 0, env_in_argv=False)
    line[line.index("--seccomp") + 1] = _FD_PLACEHOLDER
    filter_hex = program(processes=spec.limits.processes, machine=platform.machine()).hex()
    python = os.path.realpath(_base_executable())
    return [python, "-I", "-S", "-c", _LAUNCHER, filter_hex, _FD_PLACEHOLDER, *line], environment(spec)


def run_sync(argv: list[str], spec: SandboxSpec, *, stdin: bytes = b"") -> SandboxResult:
    """`run` for synchronous callers (not from inside a running event loop)."""
    return asyncio.run(run(argv, spec, stdin=stdin))


async def _supervise(process: asyncio.subprocess.Process, stdin: bytes, limits: Limits) -> SandboxResult:
    assert process.stdin and process.stdout and process.stderr
    out, err = _Capped(limits.output_bytes), _Capped(limits.output_bytes)
    timed_out = False

    async def feed() -> None:
        assert process.stdin
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.write(stdin)
            await process.stdin.drain()
        process.stdin.close()

    work = asyncio.gather(feed(), out.drain(process.stdout), err.drain(process.stderr), process.wait())
    try:
        await asyncio.wait_for(asyncio.shield(work), limits.wall_seconds)
    except TimeoutError:
        timed_out = True
    finally:
        if process.returncode is None:
            _kill(process.pid)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(work, 10)
    code = process.returncode if process.returncode is not None else -signal.SIGKILL
    return SandboxResult(code, bytes(out.data), bytes(err.data), timed_out, out.dropped, err.dropped)


class _Capped:
    """Reads a stream to its end, keeping the first `limit` bytes (so a flood cannot exhaust our memory)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.data, self.dropped = limit, bytearray(), 0

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            room = max(0, self.limit - len(self.data))
            self.data += chunk[:room]
            self.dropped += max(0, len(chunk) - room)


def _kill(pid: int) -> None:
    """SIGKILL prlimit/bwrap's process group; bwrap's PID 1 dies with it and takes the whole PID namespace."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
