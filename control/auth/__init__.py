"""People, roles and sign-in for the control service."""

from control.auth.accounts import USERNAME_PATTERN, Accounts, UserInfo
from control.auth.errors import (
    AuthError,
    BadPassword,
    BadUsername,
    LastAdmin,
    UserExists,
    UserNotFound,
)
from control.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, Hashing
from control.auth.ratelimit import LoginRateLimiter
from control.auth.roles import (
    MINIMUM_ROLE,
    ROLE_ORDER,
    Permission,
    Role,
    allows,
    two_person_rule,
)
from control.auth.sessions import LoginOutcome, Principal, Sessions, hashing_for
from control.auth.startup import warn_if_no_users

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MINIMUM_ROLE",
    "MIN_PASSWORD_LENGTH",
    "ROLE_ORDER",
    "USERNAME_PATTERN",
    "Accounts",
    "AuthError",
    "BadPassword",
    "BadUsername",
    "Hashing",
    "LastAdmin",
    "LoginOutcome",
    "LoginRateLimiter",
    "Permission",
    "Principal",
    "Role",
    "Sessions",
    "UserExists",
    "UserInfo",
    "UserNotFound",
    "allows",
    "hashing_for",
    "two_person_rule",
    "warn_if_no_users",
]
