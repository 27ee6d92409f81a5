"""Security levels (ComfyUI-Manager's `security_level`) and what each lets the manager do.

The level comes from config.toml's `[manager] security_level` (env `PARTYFLOW_MANAGER_SECURITY_LEVEL` wins), default
`normal`. Risky actions are classed by `Risk`; `allowed` applies ComfyUI-Manager's table so the CLI and, later, the
server's routes decide the same way. A pack's `install.py` runs arbitrary code at install time, so it is only run at
`weak` or `normal-`.
"""

from __future__ import annotations

import enum

from partyflow.config import Home
from partyflow.manager.errors import ManagerError

__all__ = ["Risk", "SecurityLevel", "allowed", "allows_install_script", "require", "security_level"]

LEVEL_ENV = "PARTYFLOW_MANAGER_SECURITY_LEVEL"


class SecurityLevel(enum.Enum):
    STRONG = "strong"
    NORMAL = "normal"
    NORMAL_MINUS = "normal-"
    WEAK = "weak"


class Risk(enum.IntEnum):
    LOW = 0
    MIDDLE = 1        # install from the default channel, update, uninstall, restore
    MIDDLE_PLUS = 2
    HIGH = 3          # a pack outside the default channel, fix
    HIGH_PLUS = 4     # an arbitrary git URL, an arbitrary pip install, running a pack's install.py


def security_level(home: Home) -> SecurityLevel:
    """The configured level; an unknown value is a config error naming the valid ones."""
    # --- security policy (issue 6, item 5): one resolver for every setting of the level -------------------------
    # partyflow.security.policy.resolve_level also reads PARTYFLOW_SECURITY_LEVEL and a top-level
    # `security_level` in config.toml; imported here, not at the top, because it imports this module.
    from partyflow.security.policy import resolve_level

    return resolve_level(home)
    # --- end security policy ------------------------------------------------------------------------------------


def allowed(risk: Risk, level: SecurityLevel, *, loopback: bool = True, personal_cloud: bool = False) -> bool:
    """ComfyUI-Manager's risk table; `loopback` is true for the CLI and for a server bound to 127.0.0.1."""
    weakish = level in (SecurityLevel.WEAK, SecurityLevel.NORMAL_MINUS)
    if risk >= Risk.HIGH_PLUS:
        return (loopback and weakish) or (personal_cloud and level is SecurityLevel.WEAK)
    if risk >= Risk.HIGH:
        return (loopback and weakish) or level is SecurityLevel.WEAK
    if risk >= Risk.MIDDLE_PLUS:
        return (loopback or personal_cloud) and level is not SecurityLevel.STRONG
    if risk >= Risk.MIDDLE:
        return level is not SecurityLevel.STRONG
    return True


def allows_install_script(level: SecurityLevel) -> bool:
    """Running a pack's install.py is arbitrary code execution: only at `weak` and `normal-`."""
    return allowed(Risk.HIGH_PLUS, level, loopback=True)


def require(risk: Risk, level: SecurityLevel, action: str, *, loopback: bool = True) -> None:
    """Raise a user error naming the level that would allow `action`."""
    if not allowed(risk, level, loopback=loopback):
        raise ManagerError(
            f"{action} is not allowed at security level {level.value!r}", user_error=True,
            hint="set [manager] security_level = \"normal-\" (or \"weak\") in config.toml if you trust it")
