"""Keep llama-cpp-python away from the process's stdout and stderr.

llama-cpp-python silences llama.cpp's chatter (with `verbose=False`) by pointing file descriptors 1 and 2 at
/dev/null with `os.dup2` for the duration of a load or a grammar build, then pointing them back. Descriptors are
process-wide, so this is not thread-safe: when two threads load at once, the second saves the first one's
/dev/null as "the original" and restores it last, and the process's stdout and stderr point to /dev/null for good
(`partyflow run` then prints nothing and exits 0, a server's logs vanish). Even without that race, every other
thread's output is lost while a load runs.

`tame_llama_cpp` fixes both once per process, before any model is loaded:
- llama.cpp's native log goes to the `partyflow.llm.llamacpp` logger through our own log callback, so nothing
  needs silencing (its warnings become INFO records: they are about the model file, not the user's run);
- llama-cpp-python's `suppress_stdout_stderr` is replaced, in the modules that use it, by a context manager that
  leaves the descriptors alone. Its only job was hiding the native log, which the callback already routes.

Why patch the library rather than serialise loads under a lock: a lock would stop the permanent swap, but not the
loss of every other thread's output (server logs, the CLI's progress) during each load.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import threading
from types import ModuleType, TracebackType
from typing import Any

log = logging.getLogger("partyflow.llm.llamacpp")

# ggml_log_level (ggml.h): NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5 (continues the previous record)
_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.WARNING,
           5: logging.DEBUG}
_MODULES_THAT_SWAP = ("llama_cpp.llama", "llama_cpp._internals", "llama_cpp.llama_chat_format")
_TAMED = "_partyflow_tamed"
_lock = threading.Lock()


class KeepStdio:
    """Stands in for llama-cpp-python's `suppress_stdout_stderr`: same signature, touches no descriptor."""

    def __init__(self, disable: bool = True) -> None:
        self.disable = disable

    def __enter__(self) -> KeepStdio:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        return None


def _forward(level: int, text: bytes, user_data: Any) -> None:
    """llama.cpp's log callback: each piece of native log text becomes a log record (never printed directly)."""
    del user_data
    try:
        message = text.decode("utf-8", errors="replace").rstrip()
        if message:
            log.log(_LEVELS.get(level, logging.DEBUG), "%s", message)
    except Exception:  # noqa: BLE001 - an exception must never cross back into C
        pass


def tame_llama_cpp(llama_cpp: ModuleType) -> ModuleType:
    """Route llama.cpp's log to logging and stop llama-cpp-python swapping descriptors; idempotent, thread-safe.

    Returns `llama_cpp` so it can wrap the import.
    """
    with _lock:
        if getattr(llama_cpp, _TAMED, None) is not None:
            return llama_cpp
        for name in _MODULES_THAT_SWAP:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            if hasattr(module, "suppress_stdout_stderr"):
                module.suppress_stdout_stderr = KeepStdio  # type: ignore[attr-defined]
        callback = llama_cpp.llama_log_callback(_forward)
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
        # the ctypes callback must outlive every native call that may log: it is kept on the module itself
        setattr(llama_cpp, _TAMED, callback)
    return llama_cpp
