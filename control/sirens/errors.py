"""Errors of the siren service. The API maps each branch to one HTTP status.

ShelterwatchError
└── SirenError
    ├── NotFound              no such siren, group, signal or activation: 404
    │   └── UnknownTarget     (also a ValueError) a request names sirens or groups that do
    │                         not exist; ``unknown`` lists them all
    ├── Conflict              the request contradicts the state: 409 (approving your own
    │                         request or an expired one, a duplicate id, not a test day)
    ├── InvalidInput          (also a ValueError) the input itself is wrong: 422
    │   └── ImportRejected    a bad row of an imported file: ``row`` and ``column`` name it
    ├── NotAllowed            the caller's role may not do this to this activation: 403
    └── SirensUnavailable     cannot act now (audit trail or command service down): 503
"""

from __future__ import annotations

from collections.abc import Sequence

from shelterwatch.errors import ShelterwatchError

__all__ = [
    "Conflict",
    "ImportRejected",
    "InvalidInput",
    "NotAllowed",
    "NotFound",
    "SirenError",
    "SirensUnavailable",
    "UnknownTarget",
]


class SirenError(ShelterwatchError):
    pass


class NotFound(SirenError):
    pass


class UnknownTarget(NotFound, ValueError):
    """A request named sirens or groups that do not exist. Nothing was started."""

    def __init__(self, sirens: Sequence[str] = (), groups: Sequence[str] = ()) -> None:
        self.sirens = list(sirens)
        self.groups = list(groups)
        parts = []
        if self.sirens:
            parts.append("sirens " + ", ".join(self.sirens))
        if self.groups:
            parts.append("groups " + ", ".join(self.groups))
        super().__init__(
            "unknown " + "; ".join(parts) + ": check the ids in GET /api/v1/sirens and "
            "GET /api/v1/siren-groups"
        )

    @property
    def unknown(self) -> list[str]:
        return self.sirens + self.groups


class Conflict(SirenError):
    pass


class InvalidInput(SirenError, ValueError):
    pass


class ImportRejected(InvalidInput):
    """One bad row rejects the whole import; ``row`` counts from 1 as an editor shows it."""

    def __init__(self, row: int, column: str, message: str) -> None:
        self.row = row
        self.column = column
        super().__init__(f"row {row}, column {column}: {message}; nothing was imported")


class NotAllowed(SirenError):
    pass


class SirensUnavailable(SirenError):
    pass
