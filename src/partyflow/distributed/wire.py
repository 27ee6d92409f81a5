"""Frames between the server and its Ray driver process: a 4-byte big-endian length, then a pickle.

Both ends are the same partyflow installation started by the same user (the server spawns the driver), so pickle
is safe here; nothing else writes to these pipes.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any

_HEADER = struct.Struct(">I")


def frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> Any | None:
    """The next message, or None at the end of the stream (the other side exited)."""
    try:
        header = await reader.readexactly(_HEADER.size)
        return pickle.loads(await reader.readexactly(_HEADER.unpack(header)[0]))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
