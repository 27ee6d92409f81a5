"""Users and their data directories (`<home>/user/<id>/`): settings, saved workflows, other userdata.

Single-user mode (the default) serves everyone as `default`, like ComfyUI. With multi-user on, the `comfy-user`
header must name a user created through POST /users; each user's files live in their own directory and a path can
never leave it (see `paths.confine`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

from partyflow.server.paths import confine

DEFAULT_USER = "default"
SETTINGS_FILE = "comfy.settings.json"
_USERS_FILE = "users.json"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class UnknownUser(LookupError):
    """The `comfy-user` header names no known user."""


class UserStore:
    def __init__(self, root: Path, *, multi_user: bool) -> None:
        self.root = root
        self.multi_user = multi_user
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)

    # ---- users ------------------------------------------------------------------------------------------------

    def users(self) -> dict[str, str]:
        path = self.root / _USERS_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def create(self, username: str) -> str:
        """A new user id for `username` (ValueError if the name is empty or taken)."""
        name = username.strip()
        if not name:
            raise ValueError("username must not be empty")
        with self._lock:
            users = self.users()
            if name in users.values():
                raise ValueError("Duplicate username.")
            user_id = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:40] + "_" + uuid.uuid4().hex[:8]
            users[user_id] = name
            atomic_write(self.root / _USERS_FILE, json.dumps(users, indent=2).encode())
        (self.root / user_id).mkdir(exist_ok=True)
        return user_id

    def user_for(self, header: str | None) -> str:
        if not self.multi_user:
            return DEFAULT_USER
        if not header:
            return DEFAULT_USER  # as ComfyUI: requests without the header share the default user's data
        if not _SAFE_ID.match(header) or header not in self.users():
            raise UnknownUser(f"unknown user {header!r}")
        return header

    def directory(self, user: str) -> Path:
        path = confine(self.root, user)
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ---- settings ---------------------------------------------------------------------------------------------

    def settings(self, user: str) -> dict[str, Any]:
        path = self.directory(user) / SETTINGS_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def update_settings(self, user: str, values: dict[str, Any]) -> None:
        with self._lock:
            merged = {**self.settings(user), **values}
            atomic_write(self.directory(user) / SETTINGS_FILE, json.dumps(merged, indent=4).encode())


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
