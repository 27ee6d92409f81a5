"""The manager's one error type: what failed, for which pack, and what the user can do about it.

`ManagerError` is `partyflow.errors.OperationError`, shared with the security policy (see that module for why).
`user_error` separates input the manager refused before touching anything (exit code 2 in the CLI) from an
operation that was attempted and failed (exit code 1); both leave the home as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

from partyflow.errors import OperationError

__all__ = ["ManagerError", "UnknownPackError"]


ManagerError = OperationError
"""A manager operation that was refused or failed: the neutral `partyflow.errors.OperationError` under the name
the manager, the CLI and the server catch (so a `security.policy.PolicyRefusal` is one too)."""


class UnknownPackError(ManagerError):
    """A name that matches no pack; carries close matches so interfaces can suggest them.

    Catalog code raises this too when a name is in no channel.
    """

    def __init__(self, name: str, suggestions: Sequence[str] = (), *, where: str = "installed") -> None:
        self.name = name
        self.suggestions = tuple(suggestions)
        hint = f"did you mean: {', '.join(self.suggestions)}?" if self.suggestions else None
        super().__init__(f"no {where} pack named {name!r}", pack=name, hint=hint, user_error=True)
