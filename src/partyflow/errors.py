"""The error that every interface renders the same way: what failed, for which pack, and what the user can do.

It lives here, outside both `manager` and `security`, because both raise it: the manager when an operation is
refused or fails, the security policy when a level refuses something (`security.policy.PolicyRefusal`). The
manager's `ManagerError` *is* this class (re-exported under that name), so every `except ManagerError` in the
manager, the CLI and the server also catches a policy refusal, with no import from `security` to `manager`.

`user_error` separates input that was refused before anything was touched (exit code 2 in the CLI, a 4xx from the
server) from an operation that was attempted and failed (exit code 1, a 5xx); both leave the home as it was.
"""

from __future__ import annotations

__all__ = ["OperationError"]


class OperationError(Exception):
    """An operation that was refused or failed; nothing was left half done.

    `message` says what, `pack` names the pack (or bundle) concerned, `hint` what the user can do about it.
    """

    def __init__(self, message: str, *, pack: str | None = None, hint: str | None = None,
                 user_error: bool = False) -> None:
        self.message = message
        self.pack = pack
        self.hint = hint
        self.user_error = user_error
        super().__init__(f"{message} ({hint})" if hint else message)
