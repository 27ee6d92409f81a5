"""Escape attempts against the code sandbox, each run for real in bubblewrap; each must fail and change nothing
outside the scratch folder.

The first two are the escapes that worked against the old in-process audit hook (issue 10, item 1).
"""

from __future__ import annotations

import ast
import asyncio
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from partyflow.security import sandbox, seccomp
from partyflow.tools.base import ToolError
from partyflow.tools.builtin import SandboxLimits, python_tool, run_python

FAST = SandboxLimits(wall_seconds=8, cpu_seconds=2, memory_bytes=256 * 1024 * 1024)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """A partyflow home with secrets next to the scratch folder (home/output/code, as the node uses), and a
    victim file outside; afterwards, everything outside the scratch folder must be exactly as before."""
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    (home / "config.toml").write_text('[providers.x]\napi_key = "sk-secret-config"\n')
    (home / "keys" / "signing.key").write_text("PRIVATE-KEY-MATERIAL")
    (home / "custom_nodes").mkdir()
    scratch = home / "output" / "code"
    scratch.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("original")
    before = _snapshot(tmp_path, scratch)
    yield {"home": home, "scratch": scratch, "outside": outside, "victim": outside / "victim.txt", "root": tmp_path}
    assert _snapshot(tmp_path, scratch) == before, "something changed outside the scratch folder"


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[int, bytes | str]]:
    found: dict[str, tuple[int, bytes | str]] = {}
    for folder, dirs, files in os.walk(root):
        if Path(folder) == skip:
            dirs[:] = []
            continue
        for name in dirs + files:
            path = Path(folder) / name
            if path == skip:
                continue
            info = path.lstat()
            content: bytes | str = os.readlink(path) if path.is_symlink() else (
                path.read_bytes() if path.is_file() else b"")
            found[str(path.relative_to(root))] = (info.st_mode, content)
    return found


def run(code: str, scratch: Path, limits: SandboxLimits = FAST) -> dict[str, object]:
    return asyncio.run(run_python(code, workdir=scratch, limits=limits))


def test_escape_a_overriding_the_hook_helpers_through_main(world: dict[str, Path]) -> None:
    target = world["home"] / "custom_nodes" / "evil" / "__init__.py"
    code = f"""
import os, sys
main = sys.modules["__main__"]
main.__dict__["_inside"] = lambda path: True   # what beat the old audit hook
for name in ("_BLOCKED", "_PATH_EVENTS"):
    getattr(main, name, {{}}).clear()
os.makedirs({str(target.parent)!r}, exist_ok=True)
open({str(target)!r}, "w").write("print('owned')")
"""
    result = run(code, world["scratch"])
    assert result["exit_code"] == 1 and not target.exists()
    assert "Read-only file system" in str(result["stderr"]) or "No such file" in str(result["stderr"])


def test_escape_b_os_open_with_a_directory_fd_from_elsewhere(world: dict[str, Path]) -> None:
    outside, victim = world["outside"], world["victim"]
    code = f"""
import os
results = []
for folder in ({str(outside)!r}, "/", "..", {str(world["home"])!r}):
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        made = os.open("escape.txt", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
        os.write(made, b"bad")
        results.append("WROTE " + folder)
    except OSError as exc:
        results.append(type(exc).__name__)
try:
    os.open({victim.name!r}, os.O_WRONLY | os.O_TRUNC, dir_fd=os.open({str(outside)!r}, os.O_RDONLY))
    results.append("TRUNCATED")
except OSError as exc:
    results.append(type(exc).__name__)
print(results)
"""
    result = run(code, world["scratch"])
    assert result["exit_code"] == 0 and "WROTE" not in str(result["stdout"]) and "TRUNC" not in str(result["stdout"])
    assert not Path("/escape.txt").exists() and victim.read_text() == "original"


def test_ctypes_cannot_write_outside_or_start_processes(world: dict[str, Path]) -> None:
    target = world["outside"] / "ctypes.txt"
    code = f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.open({str(target).encode()!r}, os.O_WRONLY | os.O_CREAT, 0o644)
print("open", fd, ctypes.get_errno())
print("fork", libc.fork())
print("syscall-fork", libc.syscall(57 if os.uname().machine == "x86_64" else 220, 17, 0, 0, 0, 0))
"""
    result = run(code, world["scratch"])
    lines = str(result["stdout"]).splitlines()
    assert lines[0].startswith("open -1") and lines[1] == "fork -1" and lines[2] == "syscall-fork -1", result
    assert not target.exists()


def test_proc_self_mem_is_not_there(world: dict[str, Path]) -> None:
    result = run("f = open('/proc/self/mem', 'r+b')\nf.seek(0)\nf.write(b'x')", world["scratch"])
    assert result["exit_code"] == 1 and "No such file or directory: '/proc/self/mem'" in str(result["stderr"])


def test_importlib_of_low_level_modules_gains_nothing(world: dict[str, Path]) -> None:
    code = """
import importlib
results = []
for name, attempt in (("posix", lambda m: m.fork()), ("_posixsubprocess", None), ("_socket", None)):
    module = importlib.import_module(name)
    try:
        if name == "_posixsubprocess":
            import os
            r, w = os.pipe()
            module.fork_exec([b"/usr/bin/true"], [b"/usr/bin/true"], True, (w,), None, None, -1, -1, -1, -1, -1,
                             -1, r, w, True, False, None, None, None, -1, None, False)
        elif name == "_socket":
            s = module.socket(module.AF_INET, module.SOCK_STREAM)
            s.settimeout(2)
            s.connect(("1.1.1.1", 53))
        else:
            attempt(module)
        results.append("DID " + name)
    except (OSError, TypeError) as exc:
        results.append(f"{name}: {type(exc).__name__}")
print(results)
"""
    result = run(code, world["scratch"])
    assert result["exit_code"] == 0 and "DID" not in str(result["stdout"]), result
    assert "posix: PermissionError" in str(result["stdout"])


def test_posix_spawn_and_subprocess_are_refused(world: dict[str, Path]) -> None:
    marker = world["scratch"] / "spawned.txt"
    code = """
import os, subprocess
for attempt in (lambda: os.posix_spawn("/bin/sh", ["sh", "-c", "echo x > spawned.txt"], {}),
                lambda: os.posix_spawnp("sh", ["sh", "-c", "echo x > spawned.txt"], {}),
                lambda: subprocess.run(["sh", "-c", "echo x > spawned.txt"]),
                lambda: os.execv("/bin/sh", ["sh", "-c", "exit 0"]) if os.fork() == 0 else None):
    try:
        attempt()
        print("STARTED")
    except OSError as exc:
        print(type(exc).__name__)
"""
    result = run(code, world["scratch"])
    assert str(result["stdout"]).split() == ["PermissionError"] * 4, result
    assert not marker.exists()


def test_a_fork_bomb_stops_at_the_first_fork(world: dict[str, Path]) -> None:
    result = run("import os\nwhile True:\n    os.fork()", world["scratch"])
    assert result["exit_code"] == 1 and result["timed_out"] is False
    assert "PermissionError" in str(result["stderr"])


def test_symlinks_placed_in_the_scratch_folder_lead_nowhere(world: dict[str, Path]) -> None:
    scratch, victim, outside = world["scratch"], world["victim"], world["outside"]
    (scratch / "file-link").symlink_to(victim)
    (scratch / "dir-link").symlink_to(outside)
    (scratch / "home-link").symlink_to(world["home"] / "config.toml")
    code = """
results = []
for path, mode in (("file-link", "w"), ("dir-link/new.txt", "w"), ("home-link", "r")):
    try:
        with open(path, mode) as handle:
            results.append(handle.read() if mode == "r" else handle.write("bad"))
    except OSError as exc:
        results.append(type(exc).__name__)
print(results)
"""
    result = run(code, world["scratch"])
    assert "sk-secret" not in str(result["stdout"]) and "3" not in str(result["stdout"]), result
    assert victim.read_text() == "original" and not (outside / "new.txt").exists()
    for name in ("file-link", "dir-link", "home-link"):
        (scratch / name).unlink()


def test_hard_links_placed_in_the_scratch_folder_are_read_only(world: dict[str, Path]) -> None:
    scratch, victim = world["scratch"], world["victim"]
    os.link(victim, scratch / "hard.txt")
    (scratch / "sub").mkdir()
    os.link(victim, scratch / "sub" / "deeper.txt")
    code = """
import os
results = [open("hard.txt").read()]
for attempt in (lambda: open("hard.txt", "w"), lambda: open("hard.txt", "a"),
                lambda: os.truncate("hard.txt", 0), lambda: open("sub/deeper.txt", "r+"),
                lambda: os.chmod("hard.txt", 0o777)):
    try:
        attempt()
        results.append("CHANGED")
    except OSError as exc:
        results.append(type(exc).__name__)
print(results)
"""
    result = run(code, world["scratch"])
    assert result["exit_code"] == 0 and "CHANGED" not in str(result["stdout"]), result
    assert "'original'" in str(result["stdout"])  # reading a file someone put there still works
    assert victim.read_text() == "original" and victim.stat().st_mode & 0o777 != 0o777
    (scratch / "hard.txt").unlink()
    (scratch / "sub" / "deeper.txt").unlink()
    (scratch / "sub").rmdir()


def test_the_home_and_ssh_keys_are_not_visible(world: dict[str, Path]) -> None:
    home = world["home"]
    code = f"""
import os
paths = [{str(home / "config.toml")!r}, {str(home / "keys" / "signing.key")!r}, "../../config.toml",
         "../../keys/signing.key", {os.path.expanduser("~/.ssh/id_rsa")!r}, {os.path.expanduser("~/.ssh")!r},
         os.path.expanduser("~/.ssh/id_ed25519")]
for path in paths:
    try:
        print(open(path).read() if not os.path.isdir(path) else os.listdir(path))
    except OSError as exc:
        print(type(exc).__name__)
"""
    result = run(code, world["scratch"])
    out = str(result["stdout"])
    assert "sk-secret" not in out and "PRIVATE-KEY" not in out and out.split() == ["FileNotFoundError"] * 7, out


def test_sockets_reach_nothing(world: dict[str, Path]) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0)
    port = listener.getsockname()[1]
    unix_path = world["root"] / "host.sock"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(unix_path))
    unix.listen()
    unix.settimeout(0)
    code = f"""
import socket
results = []
for family, address in ((socket.AF_INET, ("127.0.0.1", {port})), (socket.AF_INET, ("1.1.1.1", 443)),
                        (socket.AF_INET6, ("::1", {port})), (socket.AF_UNIX, {str(unix_path)!r})):
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(address)
        results.append("CONNECTED")
    except OSError as exc:
        results.append(type(exc).__name__)
print(results)
"""
    try:
        result = run(code, world["scratch"])
        assert result["exit_code"] == 0 and "CONNECTED" not in str(result["stdout"]), result
        for server in (listener, unix):
            with pytest.raises(BlockingIOError):
                server.accept()  # nobody ever connected
    finally:
        listener.close()
        unix.close()
        unix_path.unlink()


def test_output_and_memory_floods_are_capped(world: dict[str, Path]) -> None:
    result = run("import sys\nfor _ in range(200):\n    sys.stdout.write('x' * 65536)", world["scratch"])
    assert len(str(result["stdout"])) < 70_000 and "more bytes cut" in str(result["stdout"])
    result = run("x = bytearray(1024 * 1024 * 1024)", world["scratch"])
    assert "MemoryError" in str(result["stderr"])


def test_without_the_os_sandbox_the_tool_refuses(world: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = sandbox.shutil.which
    monkeypatch.setattr(sandbox.shutil, "which", lambda name, path=None: None if name == "bwrap"
                        else real_which(name, path=path))
    sandbox._probe.cache_clear()
    try:
        tool = python_tool(workdir=world["scratch"], limits=FAST)
        with pytest.raises(ToolError, match="OS sandbox is unavailable: 'bwrap' was not found; install bubblewrap"):
            asyncio.run(tool.fn(code="open('ran.txt', 'w').write('1')"))
        assert not (world["scratch"] / "ran.txt").exists()
    finally:
        sandbox._probe.cache_clear()


def test_the_kernel_side_is_locked_down(world: dict[str, Path]) -> None:
    """seccomp in filter mode, no_new_privs, no capabilities, no way to make namespaces or ptrace inside, no
    inherited file descriptors or environment."""
    code = r"""
import ctypes, os
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
print(status["Seccomp"].strip(), status["NoNewPrivs"].strip(), status["CapEff"].strip(), status["CapBnd"].strip())
libc = ctypes.CDLL(None, use_errno=True)
print(libc.unshare(0x10000000), libc.ptrace(16, 1, 0, 0), libc.mount(b"none", b"/scratch", b"tmpfs", 0, None))
print(sorted(os.listdir("/")))
print(len(os.listdir("/proc/self/fd")), sorted(os.environ))
"""
    spec = sandbox.SandboxSpec(scratch=world["scratch"], proc=True,
                               read_only=sandbox.python_binds(site_packages=False))
    python = os.path.realpath(sys.executable)
    result = sandbox.run_sync([python, "-I", "-S", "-c", code], spec)
    lines = result.stdout.decode().splitlines()
    assert result.exit_code == 0, result.stderr
    assert lines[0] == "2 1 0000000000000000 0000000000000000"
    assert lines[1] == "-1 -1 -1"
    assert not {"home", "tmp", "run", "var", "srv", "opt", "mnt"} & set(ast.literal_eval(lines[2]))
    assert lines[3] == "4 ['HOME', 'LANG', 'PATH', 'PWD', 'TMPDIR']"  # 0-2 and listdir's own fd; PWD: bwrap's --chdir


def test_an_unknown_architecture_means_no_sandbox() -> None:
    with pytest.raises(seccomp.UnsupportedArchitecture, match="riscv64"):
        seccomp.program(processes=False, machine="riscv64")


def test_the_wall_clock_kills_the_whole_sandbox(world: dict[str, Path]) -> None:
    marker = "987.654321"
    spec = sandbox.SandboxSpec(scratch=world["scratch"], limits=sandbox.Limits(wall_seconds=1.5, processes=True))
    result = sandbox.run_sync(["/bin/sh", "-c", f"sleep {marker} & sleep {marker}"], spec)
    assert result.timed_out and result.killed_by == "SIGKILL"
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                left.append(pid)
        except OSError:
            continue
    assert not left, f"processes left behind: {left}"


def test_no_set_user_id_file_can_be_planted(world: dict[str, Path]) -> None:
    """Files the sandbox writes are the host user's (root's, under CI): a set-user-ID shell there would be a way up."""
    scratch = world["scratch"]
    (scratch / "planted").write_bytes(b"#!/bin/sh\n")
    os.chmod(scratch / "planted", 0o4755)  # as if something got one in: the run clears it afterwards
    code = """
import os, shutil
shutil.copy("/bin/sh", "sh")
results = []
for attempt in (lambda: os.chmod("sh", 0o4755), lambda: os.chmod("sh", 0o2755),
                lambda: os.open("new", os.O_CREAT | os.O_WRONLY, 0o6755), lambda: os.mkfifo("fifo"),
                lambda: os.mknod("node", 0o4755)):
    try:
        attempt()
        results.append("DID")
    except OSError as exc:
        results.append(type(exc).__name__)
os.chmod("sh", 0o755)  # ordinary modes still work
print(results)
"""
    result = run(code, scratch)
    assert result["exit_code"] == 0 and "DID" not in str(result["stdout"]), result
    for path in scratch.iterdir():
        assert not path.lstat().st_mode & 0o6000, path
    assert (scratch / "sh").stat().st_mode & 0o777 == 0o755
