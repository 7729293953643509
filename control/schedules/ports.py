"""What the scheduler needs from the rest of the control service, as Protocols it owns.

The siren service (control/sirens) starts activations and resolves targets; the scheduler only
needs these two calls, so tests run it against a recording implementation and the siren
service can change behind them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from shelterwatch.contract import SirenKind

__all__ = ["ActivationStarter", "StartedActivation"]


class StartedActivation(Protocol):
    """What the scheduler keeps of an activation it started: its id, for the run report."""

    @property
    def id(self) -> Any: ...


class ActivationStarter(Protocol):
    """The siren service as the scheduler sees it.

    ``request`` dispatches non-live kinds at once. ``resolve`` raises a ``ValueError`` (a
    subclass naming the unknown ids) when a siren or group does not exist.
    """

    async def request(
        self,
        *,
        kind: SirenKind,
        signal: str | None,
        sirens: list[str],
        groups: list[str],
        actor: str,
        reason: str,
        schedule: str | None = None,
        exercise: str | None = None,
    ) -> StartedActivation: ...

    async def resolve(self, *, sirens: list[str], groups: list[str]) -> Sequence[object]: ...
