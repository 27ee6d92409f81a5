"""Confining request-supplied paths to one directory.

Every file a request names goes through `confine`: the joined path is resolved (following symlinks) and must stay
inside the base, so `..`, absolute paths, percent-encoded separators (decoded by the router before they get here)
and symlinks pointing elsewhere are all refused the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_NAME_BYTES = 255  # NAME_MAX of Linux file systems (ext4, btrfs, xfs, tmpfs)
MAX_PATH_BYTES = 4096  # PATH_MAX


class PathRefused(ValueError):
    """A request path that is malformed or leaves its directory; the message is safe to show to the client.

    `status` is the HTTP answer: 403 for a path that tries to leave its directory, 400 for a name no file system
    here can hold (too long, not encodable), which is a plain client mistake.
    """

    status = 403


class BadName(PathRefused):
    status = 400


def confine(base: Path, *parts: str) -> Path:
    """`base / parts...`, resolved, refusing anything outside `base` (which may itself be a symlink).

    Names the operating system would refuse (a component over 255 bytes, a whole path over 4096, characters the
    file system encoding cannot hold) are refused here with a clear reason, before any file call turns them into
    an OSError the handler did not expect.
    """
    root = base.resolve()
    for part in parts:
        if "\x00" in part:
            raise PathRefused("path contains a NUL byte")
        if "\\" in part:
            raise PathRefused("path contains a backslash; use '/' between folders")
        _check_name_lengths(part)
    target = root.joinpath(*parts)
    if len(_encoded(str(target))) > MAX_PATH_BYTES:
        raise BadName(f"path is longer than {MAX_PATH_BYTES} bytes")
    target = target.resolve()
    if target != root and not target.is_relative_to(root):
        raise PathRefused("path leaves the allowed directory")
    return target


def _check_name_lengths(part: str) -> None:
    for name in _encoded(part).split(b"/"):
        if len(name) > MAX_NAME_BYTES:
            shown = name[:40].decode("utf-8", "replace")
            raise BadName(f"file or folder name {shown!r}... is {len(name)} bytes long; the limit is "
                          f"{MAX_NAME_BYTES} bytes")


def _encoded(text: str) -> bytes:
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:
        raise BadName("path contains characters that cannot be used in a file name") from None


def relative(base: Path, target: Path) -> str:
    """`target` relative to `base` with '/' separators, as clients expect."""
    return target.relative_to(base.resolve()).as_posix()
