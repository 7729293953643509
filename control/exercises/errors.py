"""What can go wrong with an exercise, as exceptions the API turns into clear answers."""

from __future__ import annotations

from shelterwatch.errors import ShelterwatchError

__all__ = [
    "Conflict",
    "ExerciseError",
    "InvalidInput",
    "LabelRefused",
    "NotAllowed",
    "NotFound",
    "Unavailable",
]


class ExerciseError(ShelterwatchError):
    pass


class NotFound(ExerciseError):
    """No such exercise or situation, or one outside the caller's scope (the same answer)."""


class InvalidInput(ExerciseError):
    pass


class Conflict(ExerciseError):
    """The exercise's state does not allow it (start twice, inject after the end)."""


class NotAllowed(ExerciseError):
    """Only the exercise's director may do this."""


class Unavailable(ExerciseError):
    """The audit trail did not take the step, so it was not taken."""


class LabelRefused(ExerciseError):
    """A command or order names an exercise it may not carry the label of."""
