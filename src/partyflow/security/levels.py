"""Security levels (ComfyUI-Manager's `security_level`) and ComfyUI-Manager's risk table.

These are security concepts, used by the policy (`security.policy`) and by the manager alike, so they live here:
the manager imports them, never the other way round. Risky actions are classed by `Risk`; `allowed` applies
ComfyUI-Manager's table so the CLI, the Python API and the server's routes decide the same way. A pack's
`install.py` runs arbitrary code at install time, so it is only run at `weak` or `normal-`.

Pure and cheap to import (no I/O, no other partyflow module): the CLI reads the level names at start-up.
"""

from __future__ import annotations

import enum

__all__ = ["LEVEL_ENV", "MANAGER_LEVEL_ENV", "Risk", "SecurityLevel", "allowed", "allows_install_script"]

LEVEL_ENV = "PARTYFLOW_SECURITY_LEVEL"
"""The environment variable that sets the level (wins over config.toml)."""
MANAGER_LEVEL_ENV = "PARTYFLOW_MANAGER_SECURITY_LEVEL"
"""The older name of `LEVEL_ENV`, still honoured (after it)."""


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
