"""The manager's side of security levels: the level in force for a home, and `require`, which refuses an action
with a `ManagerError` naming the level that would allow it.

The levels and ComfyUI-Manager's risk table are security concepts and live in `partyflow.security.levels`; they
are re-exported here for existing callers (`SecurityLevel`, `Risk`, `allowed`, `allows_install_script`,
`LEVEL_ENV`, which here means the older `PARTYFLOW_MANAGER_SECURITY_LEVEL`). New code imports them from there.
"""

from __future__ import annotations

from partyflow.config import Home
from partyflow.manager.errors import ManagerError
from partyflow.security.levels import MANAGER_LEVEL_ENV as LEVEL_ENV
from partyflow.security.levels import Risk, SecurityLevel, allowed, allows_install_script

__all__ = ["LEVEL_ENV", "Risk", "SecurityLevel", "allowed", "allows_install_script", "require", "security_level"]


def security_level(home: Home) -> SecurityLevel:
    """The configured level (`security.policy.resolve_level`: the environment, then config.toml's top-level or
    `[manager] security_level`); an unknown value is a config error naming the valid ones."""
    # imported here: the policy module loads the whole scanner, which only this function needs
    from partyflow.security.policy import resolve_level

    return resolve_level(home)


def require(risk: Risk, level: SecurityLevel, action: str, *, loopback: bool = True) -> None:
    """Raise a user error naming the level that would allow `action`."""
    if not allowed(risk, level, loopback=loopback):
        raise ManagerError(
            f"{action} is not allowed at security level {level.value!r}", user_error=True,
            hint="set [manager] security_level = \"normal-\" (or \"weak\") in config.toml if you trust it")
