"""Socket types shared by the core nodes."""

from __future__ import annotations


class AnyType(str):
    """The `*` socket type, accepting any connection even in ComfyUI versions that compare types strictly.

    Older ComfyUI checks links with `!=`; a `str` that never compares unequal lets `*` sockets connect
    to every type there, and partyflow (which treats `*` as a wildcard itself) sees a plain "*".
    """

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


ANY = AnyType("*")

JSON = "JSON"
"""A JSON-compatible value (dict, list, str, int, float, bool or None) passed between nodes unserialised."""

FLOW_CONTROL = "FLOW_CONTROL"
"""The socket that ties a loop's open node to its close node."""
