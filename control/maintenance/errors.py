"""Errors of the maintenance service; the routers map each to one HTTP status.

    MaintenanceError
    ├── NotFound        404  no such site item, work order or alert
    ├── InvalidInput    422  the request itself is wrong (a due date in the past, ...)
    ├── Conflict        409  the work order's state does not allow it (already closed)
    └── Unavailable     503  the audit trail cannot take it now, so nothing was done

``ProgrammeError`` (a ``ConfigError``) is a programme file that does not load: it names the
file and the key, and stops the service's start.
"""

from __future__ import annotations

from shelterwatch.errors import ConfigError

__all__ = [
    "Conflict",
    "InvalidInput",
    "MaintenanceError",
    "NotFound",
    "ProgrammeError",
    "Unavailable",
]


class MaintenanceError(Exception):
    pass


class NotFound(MaintenanceError):
    pass


class InvalidInput(MaintenanceError):
    """``field`` names the request's field at fault, when one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Conflict(MaintenanceError):
    pass


class Unavailable(MaintenanceError):
    pass


class ProgrammeError(ConfigError):
    pass
