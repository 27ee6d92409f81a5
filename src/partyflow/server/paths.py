"""Confining request-supplied paths to one directory.

Every file a request names goes through `confine`: the joined path is resolved (following symlinks) and must stay
inside the base, so `..`, absolute paths, percent-encoded separators (decoded by the router before they get here)
and symlinks pointing elsewhere are all refused the same way.
"""

from __future__ import annotations

from pathlib import Path


class PathRefused(ValueError):
    """A request path that is malformed or leaves its directory; the message is safe to show to the client."""


def confine(base: Path, *parts: str) -> Path:
    """`base / parts...`, resolved, refusing anything outside `base` (which may itself be a symlink)."""
    root = base.resolve()
    for part in parts:
        if "\x00" in part:
            raise PathRefused("path contains a NUL byte")
        if "\\" in part:
            raise PathRefused("path contains a backslash; use '/' between folders")
    target = root.joinpath(*parts).resolve()
    if target != root and not target.is_relative_to(root):
        raise PathRefused("path leaves the allowed directory")
    return target


def relative(base: Path, target: Path) -> str:
    """`target` relative to `base` with '/' separators, as clients expect."""
    return target.relative_to(base.resolve()).as_posix()
