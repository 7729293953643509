"""Time for the runner: the system clock, and a hand-moved one so tests can reach "next Monday
09:00" at once instead of sleeping until then."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    async def sleep_until(self, when: datetime, wake: asyncio.Event) -> None:
        """Return at ``when``, or earlier when ``wake`` is set. Spurious returns are allowed:
        the caller looks at ``now()`` again."""
        ...


class SystemClock:
    # Waits are cut into slices at most this long, so a wall clock that jumps (NTP, a VM
    # resumed) is noticed within a slice rather than after a long monotonic sleep.
    max_wait_s = 30.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime, wake: asyncio.Event) -> None:
        delay = min(self.max_wait_s, (when - self.now()).total_seconds())
        if delay <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await wake.wait()


class ManualClock:
    """A clock that moves only when told to. Moving it wakes every sleeper, which looks at the
    new time and goes back to sleep if it is not yet due."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._sleepers: set[asyncio.Event] = set()

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock.set needs a timezone-aware time")
        self._now = when.astimezone(UTC)
        for wake in self._sleepers:
            wake.set()

    async def sleep_until(self, when: datetime, wake: asyncio.Event) -> None:
        if self._now >= when:
            return
        self._sleepers.add(wake)
        try:
            await wake.wait()
        finally:
            self._sleepers.discard(wake)
