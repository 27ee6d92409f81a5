"""Roles, permissions and token scopes: who may do what, as data and two small functions.

Roles are ordered — each includes everything the ones before it may do:

- `viewer`: read history, queue, outputs and node definitions;
- `runner`: also queue and interrupt prompts, upload inputs, chat with published models;
- `publisher`: also save and publish workflows, configure channels;
- `admin`: also manage packs (within the security level), providers and users.

A token may carry scopes narrower than its user's role: permission names (`read`, `run`, `publish`, `admin`) and
`chat:<model>`, which allows only chat completions with that one published model (for apps and channel bots).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Permission(StrEnum):
    READ = "read"
    RUN = "run"
    PUBLISH = "publish"
    ADMIN = "admin"


ROLES: tuple[str, ...] = ("viewer", "runner", "publisher", "admin")
_ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
_PERMISSION_RANK = {Permission.READ: 0, Permission.RUN: 1, Permission.PUBLISH: 2, Permission.ADMIN: 3}
CHAT_SCOPE_PREFIX = "chat:"


class AccessError(Exception):
    """Refused: `status` is 401 (who are you?) or 403 (not allowed); `reason` says what the caller can do."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def check_role(role: str) -> str:
    """The role, or a ValueError listing the valid names (a typo in config or on the command line)."""
    if role not in _ROLE_RANK:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def parse_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """Validated scope strings; ValueError naming the first bad one."""
    valid = {p.value for p in Permission}
    result = set()
    for scope in scopes:
        scope = scope.strip()
        if scope in valid or (scope.startswith(CHAT_SCOPE_PREFIX) and len(scope) > len(CHAT_SCOPE_PREFIX)):
            result.add(scope)
        else:
            raise ValueError(f"unknown scope {scope!r}: use {', '.join(sorted(valid))} or chat:<model>")
    return frozenset(result)


@dataclass(frozen=True)
class Identity:
    """Who is asking: a user with a role, through a token (maybe scoped), a browser session, or the server's own
    API token / an unauthenticated loopback server (both act as `admin`, as partyflow did before users)."""

    user: str
    role: str
    via: str  # "token" | "session" | "server-token" | "local"
    scopes: frozenset[str] | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and (self.scopes is None or Permission.ADMIN.value in self.scopes)

    def allows(self, permission: Permission) -> bool:
        if _ROLE_RANK[self.role] < _PERMISSION_RANK[permission]:
            return False
        if self.scopes is None:
            return True
        return any(scope in {p.value for p in Permission} and _PERMISSION_RANK[Permission(scope)] >=
                   _PERMISSION_RANK[permission] for scope in self.scopes)

    def may_chat(self, model: str) -> bool:
        """Chat completions with `model`: the run permission, or a `chat:<model>` scope (within a runner role)."""
        if self.allows(Permission.RUN):
            return True
        return (_ROLE_RANK[self.role] >= _PERMISSION_RANK[Permission.RUN] and self.scopes is not None
                and f"{CHAT_SCOPE_PREFIX}{model}" in self.scopes)

    @property
    def chat_only(self) -> bool:
        """A token limited to chat scopes: it may reach the chat routes and nothing else."""
        return self.scopes is not None and bool(self.scopes) and all(
            s.startswith(CHAT_SCOPE_PREFIX) for s in self.scopes)

    def refuse(self, permission: Permission, what: str) -> AccessError:
        if _ROLE_RANK[self.role] < _PERMISSION_RANK[permission]:
            needed = ROLES[_PERMISSION_RANK[permission]]
            return AccessError(403, f"{what} needs the {needed} role; user {self.user!r} is {self.role}")
        return AccessError(403, f"{what} needs the {permission.value!r} scope, which this token does not have")
