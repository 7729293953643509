"""What can go wrong with areas, as exceptions the API and the CLI turn into clear answers."""

from __future__ import annotations

from shelterwatch.errors import ShelterwatchError

__all__ = ["AreaError", "AreaInUse", "OutOfScope"]


class AreaError(ShelterwatchError):
    """An area tree that does not hold together: the message names the area and the fault."""


class AreaInUse(AreaError):
    """An import would remove an area that users still belong to."""


class OutOfScope(ShelterwatchError):
    """The caller's area does not cover what they asked to act on."""
