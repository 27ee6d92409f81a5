"""Who may do what: users with roles, API tokens (hashed, scoped, expiring) and browser sessions.

A plain library over the home's state.sqlite; the server enforces it (server/access.py) and the CLI manages it
(`partyflow users`, `partyflow tokens`). See docs/access.md.
"""

from partyflow.access.roles import ROLES, AccessError, Identity, Permission, check_role, parse_scopes
from partyflow.access.store import AccessStore, TokenInfo, UserInfo, parse_duration

__all__ = ["ROLES", "AccessError", "AccessStore", "Identity", "Permission", "TokenInfo", "UserInfo",
           "check_role", "parse_duration", "parse_scopes"]
