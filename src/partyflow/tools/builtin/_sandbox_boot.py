"""Run inside the code tool's sandboxed interpreter, before the user's code: read the program, then run it.

Kept as a separate file (read and passed with `-c`) so it stays plain, lintable Python. It must import nothing
beyond the standard library and must not be imported by partyflow itself. It holds no security logic: the
boundary is the OS sandbox around the whole process (`partyflow.security.sandbox`), so nothing here needs
protecting from the user's code.
"""

import os
import sys
import traceback

sys.stdout.reconfigure(encoding="utf-8", errors="replace")
sys.stderr.reconfigure(encoding="utf-8", errors="replace")
_source = sys.stdin.read()
sys.stdin = open(os.devnull)  # noqa: SIM115 - the user's code gets an empty stdin
try:
    exec(compile(_source, "<code>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
except SystemExit:
    raise
except BaseException:
    _type, _value, _tb = sys.exc_info()
    traceback.print_exception(_type, _value, _tb.tb_next if _tb else None)
    sys.exit(1)
