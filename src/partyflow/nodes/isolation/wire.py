"""How the host and an isolated pack's worker talk: length-prefixed pickle frames over a pair of pipes.

Pickle, because node values are arbitrary Python objects (ComfyUI passes tensors, images, dicts of anything) and
the design asks that node inputs and outputs be "picklable or reported". Both ends are partyflow code on the same
machine, started by the host, so unpickling what the other end sent is no wider trust than importing the pack.
When a value cannot cross, the error names the value (input or output, by name) and why, instead of a bare
`PicklingError`. Only the standard library is used here: this module is imported inside the pack's own venv.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Mapping, Sequence
from typing import IO, Any

__all__ = ["ChannelClosed", "ValueTransferError", "dumps_named", "read_frame", "write_frame"]

_HEADER = struct.Struct("!Q")
PROTOCOL = pickle.HIGHEST_PROTOCOL


class ChannelClosed(EOFError):
    """The other end went away (closed its pipe, crashed or was killed) before a whole frame arrived."""


class ValueTransferError(TypeError):
    """A value that cannot cross the process boundary; says which one and why."""

    exception_type = "IsolationValueError"


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> bytes:
    header = _read_exactly(stream, _HEADER.size)
    return _read_exactly(stream, _HEADER.unpack(header)[0])


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise ChannelClosed("the other process closed the channel")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def dumps_named(message: Any, values: Mapping[str, Any] | Sequence[Any], what: str) -> bytes:
    """Pickle `message`; when that fails, find which of `values` (inputs by name, or outputs by index) is to blame.

    `what` describes the direction for the message ("input", "output"). Pickling twice happens only on failure.
    """
    try:
        return pickle.dumps(message, protocol=PROTOCOL)
    except Exception as exc:  # pickle raises TypeError, AttributeError, PicklingError... for one bad value
        items = values.items() if isinstance(values, Mapping) else enumerate(values)
        for key, value in items:
            try:
                pickle.dumps(value, protocol=PROTOCOL)
            except Exception as inner:
                label = f"{what} {key!r}" if isinstance(key, str) else f"{what} {key}"
                raise ValueTransferError(
                    f"{label} ({type(value).__module__}.{type(value).__qualname__}) cannot be sent between partyflow "
                    f"and the isolated pack's worker process: {type(inner).__name__}: {inner}. Values crossing the "
                    "process boundary must be picklable; run the pack without --isolate to pass such values"
                ) from inner
        raise ValueTransferError(f"a {what} value cannot be pickled: {type(exc).__name__}: {exc}") from exc


def loads_reported(payload: bytes, what: str) -> Any:
    """Unpickle a frame; a value whose class this side cannot import becomes a clear ValueTransferError."""
    try:
        return pickle.loads(payload)
    except (ModuleNotFoundError, AttributeError, ImportError) as exc:
        raise ValueTransferError(
            f"a {what} value is an object of a class this process cannot import ({type(exc).__name__}: {exc}); "
            "an isolated pack can return only values whose types exist on both sides (builtins, partyflow's "
            "types, or packages installed in both environments)") from exc
