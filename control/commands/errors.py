"""Errors of the command service.

ShelterwatchError
└── CommandError             a command could not be submitted
    ├── InvalidCommand       the request itself is wrong (bad id, ttl, params): 422
    └── CommandUnavailable   the service cannot send now (no key, no audit, closed): 503
"""

from __future__ import annotations

from shelterwatch.errors import ShelterwatchError

__all__ = ["CommandError", "CommandUnavailable", "InvalidCommand"]


class CommandError(ShelterwatchError):
    pass


class InvalidCommand(CommandError):
    pass


class CommandUnavailable(CommandError):
    pass
