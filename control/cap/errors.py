"""Errors of the CAP package. Every one is a ValueError: the input was wrong, not the service.

CapError               base; the message says what is wrong, where, and what to do next
├── CapSyntaxError     not XML we will read: malformed, too large, or carrying a DTD
├── CapSchemaError     XML, but not a valid CAP 1.2 alert (``problems`` lists each violation)
└── CapRefused         valid CAP 1.2 that cannot pre-fill a siren activation
"""

from __future__ import annotations

__all__ = ["CapError", "CapRefused", "CapSchemaError", "CapSyntaxError"]


class CapError(ValueError):
    """A CAP message that cannot be built or read, or an input that cannot become one."""


class CapSyntaxError(CapError):
    pass


class CapSchemaError(CapError):
    """The message breaks the CAP 1.2 schema. ``problems`` holds one line per violation."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class CapRefused(CapError):
    pass
