"""Run inside the code tool's child interpreter, before the user's code: limits first, then the audit hook.

Kept as a separate file (read and passed with `-c`) so it stays plain, lintable Python. It must import nothing
beyond the standard library and must not be imported by partyflow itself.
"""

import builtins
import os
import resource
import sys
import traceback

WORKDIR = os.path.realpath(os.getcwd())
MEMORY, CPU, FILE_SIZE = (int(v) for v in sys.argv[1:4])


def _limit(kind, value, hard=None):
    try:
        resource.setrlimit(kind, (value, value if hard is None else hard))
    except (ValueError, OSError):
        pass


_limit(resource.RLIMIT_AS, MEMORY)
_limit(resource.RLIMIT_CPU, CPU, CPU + 1)  # SIGXCPU at the soft limit, SIGKILL a second later
_limit(resource.RLIMIT_FSIZE, FILE_SIZE)
_limit(resource.RLIMIT_CORE, 0)
_limit(resource.RLIMIT_NOFILE, 64)

_BLOCKED = {
    "socket.__new__": "network access", "socket.connect": "network access", "socket.bind": "network access",
    "socket.getaddrinfo": "network access", "socket.sendto": "network access", "socket.gethostbyname": "network access",
    "subprocess.Popen": "starting processes", "os.system": "starting processes", "os.exec": "starting processes",
    "os.posix_spawn": "starting processes", "os.spawn": "starting processes", "os.fork": "starting processes",
    "os.forkpty": "starting processes", "pty.spawn": "starting processes", "os.kill": "signalling processes",
    "ctypes.dlopen": "loading native code", "ctypes.dlsym": "loading native code", "ctypes.cdata": "native memory",
    "ctypes.call_function": "calling native code", "sys.remote_exec": "debugging",
}
_PATH_EVENTS = {"os.remove": 1, "os.rmdir": 1, "os.mkdir": 1, "os.rename": 2, "os.replace": 2, "os.chmod": 1,
                "os.chown": 1, "os.link": 2, "os.symlink": 2, "os.truncate": 1, "os.utime": 1, "shutil.rmtree": 1,
                "shutil.copyfile": 2, "shutil.move": 2}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _inside(path):
    if isinstance(path, int):
        return True
    target = os.path.realpath(os.fsdecode(path))
    return target == WORKDIR or target.startswith(WORKDIR + os.sep)


def _refuse(what):
    raise PermissionError(f"{what} is not allowed in the code tool (it runs without network, processes or "
                          "native code, and may only write in its working folder)")


def _hook(event, args):
    if event in _BLOCKED:
        _refuse(_BLOCKED[event])
    if event == "open":
        path, mode, flags = args
        writing = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & _WRITE_FLAGS)
        if writing and path is not None and not _inside(path):
            _refuse(f"writing {os.fsdecode(path)!r}")
    elif event in _PATH_EVENTS:
        for path in args[:_PATH_EVENTS[event]]:
            if path is not None and not _inside(path):
                _refuse(f"{event} on {os.fsdecode(path)!r}")


sys.addaudithook(_hook)
sys.stdout.reconfigure(encoding="utf-8", errors="replace")
sys.stderr.reconfigure(encoding="utf-8", errors="replace")
_source = sys.stdin.read()
sys.stdin = open(os.devnull)  # noqa: SIM115 - the user's code gets an empty stdin
del _limit
try:
    exec(compile(_source, "<code>", "exec"), {"__name__": "__main__", "__builtins__": builtins})
except SystemExit:
    raise
except BaseException:
    _type, _value, _tb = sys.exc_info()
    traceback.print_exception(_type, _value, _tb.tb_next if _tb else None)
    sys.exit(1)
