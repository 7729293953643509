"""Errors of accounts and sign-in.

    ShelterwatchError
    └── AuthError           an account operation was refused; the message says why
        ├── BadUsername     not a valid username
        ├── BadPassword     the password breaks the rules (length, white space)
        ├── UserExists      the username is taken
        ├── UserNotFound    no such user
        └── LastAdmin       the change would leave no active admin

A failed *login* is not an exception: it is an outcome (see sessions.LoginOutcome), because
its handling (count, lock, audit, one vague answer) is the normal path, not an error path.
"""

from __future__ import annotations

from shelterwatch.errors import ShelterwatchError

__all__ = ["AuthError", "BadPassword", "BadUsername", "LastAdmin", "UserExists", "UserNotFound"]


class AuthError(ShelterwatchError):
    pass


class BadUsername(AuthError):
    pass


class BadPassword(AuthError):
    pass


class UserExists(AuthError):
    pass


class UserNotFound(AuthError):
    pass


class LastAdmin(AuthError):
    pass
