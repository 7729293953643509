"""Errors of the conversion service; the routers map each to one HTTP status.

    ConversionError
    ├── NotFound        404  no such plan, order, shelter or step
    ├── InvalidInput    422  the request itself is wrong (no reason, unknown level)
    ├── Conflict        409  the order's state does not allow it (two-person rule, ended)
    ├── NotAllowed      403  the caller's role may not do it to this order
    └── Unavailable     503  the audit trail or the command link cannot take it now

``PlanError`` (a ``ConfigError``) is a plan file that does not load: it names the file and
the key, and stops the service's start rather than the first conversion.
"""

from __future__ import annotations

from shelterwatch.errors import ConfigError

__all__ = [
    "Conflict",
    "ConversionError",
    "InvalidInput",
    "NotAllowed",
    "NotFound",
    "PlanError",
    "Unavailable",
]


class ConversionError(Exception):
    pass


class NotFound(ConversionError):
    pass


class InvalidInput(ConversionError):
    """``field`` names the request's field at fault, when one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Conflict(ConversionError):
    pass


class NotAllowed(ConversionError):
    pass


class Unavailable(ConversionError):
    pass


class PlanError(ConfigError):
    pass
