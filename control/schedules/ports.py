"""What the scheduler needs from the rest of the control service, as Protocols it owns.

The siren service (control/sirens) starts activations and resolves targets; the scheduler only
needs these two calls, so tests run it against a recording implementation and the siren
service can change behind them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shelterwatch.contract import SirenKind

__all__ = ["ActivationStarter", "ProgrammeListener", "ProgrammeRun", "StartedActivation"]


class StartedActivation(Protocol):
    """What the scheduler keeps of an activation it started: its id, for the run report."""

    @property
    def id(self) -> Any: ...


class ActivationStarter(Protocol):
    """The siren service as the scheduler sees it.

    ``request`` dispatches non-live kinds at once. ``resolve`` raises a ``ValueError`` (a
    subclass naming the unknown ids) when a siren or group does not exist; the posts it
    returns carry ``id`` and ``site`` (str), which place a schedule in the command areas (a
    post without them is placed nowhere: only callers who see every area see it).
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


@dataclass(frozen=True)
class ProgrammeRun:
    """A run of a schedule whose audible test has just started (a test day): its whole
    programme, for the one CAP Test message that tells the public about every step."""

    schedule: str
    schedule_id: int
    title: str
    run: datetime  # the run's start, in the schedule's time zone
    # Each audible test step of the run: when it starts and its signal.
    steps: tuple[tuple[datetime, str], ...]
    sirens: tuple[str, ...]
    groups: tuple[str, ...]
    activation: str  # the activation of the step that just fired
    actor: str


class ProgrammeListener(Protocol):
    """Told when a run's audible test fires (any of them: it must be idempotent per run).
    It must not raise: a failure there is its own to log, never the step's."""

    async def programme_fired(self, run: ProgrammeRun) -> None: ...
