"""The gateway's timestamps: wall-clock time that never runs backwards.

A reading's ``ts`` is what the collector stores it under, and what "latest" means to every
dashboard. So the gateway's timestamps obey two rules:

- **monotonic**: every call returns a later millisecond than the one before. A device's
  readings therefore never share a timestamp (which would make the store overwrite one with
  the other) and never go back in time (which would make an older reading look newest).
- **honest**: they follow the system clock wherever they can. The clock is checked against
  the monotonic clock on every call; a difference of more than ``step_tolerance_ms`` is a
  *step* (someone or NTP set the clock), logged and counted.

  - A step *forward* is followed at once: the later time is taken to be right (the usual
    case is a box that booted with an old clock until NTP set it). A clock far in the future
    is refused and counted by the collector (``max_future_s``), so it cannot go unnoticed.
  - A small step *backward* (up to ``max_slew_ms``, 5 minutes: NTP corrections) cannot be
    followed without breaking the first rule, so the gateway's time is *slewed*: it runs at
    ``slew_rate`` of real speed until the system clock catches up, then follows it again.
    After a step back of D seconds, timestamps are at most D seconds ahead of the system
    clock, by less every second, for D / (1 - slew_rate).
  - A large step backward is a correction of a clock that was badly ahead. Slewing would
    keep the readings that far in the future for twice as long (and the collector refuses
    readings more than a day ahead), so here honesty wins: timestamps follow the clock back
    at once, logged at ERROR. This is the one case where a device's timestamps go back; the
    readings stamped with the wrong clock stay in the store where they were.

Pure logic apart from the two clock functions, which tests replace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ClockStats", "GatewayClock"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ClockStats:
    steps_forward: int = 0
    steps_back: int = 0
    # Milliseconds the gateway's time is ahead of the system clock while it slews.
    ahead_ms: int = 0


class GatewayClock:
    def __init__(
        self,
        wall_ns: Callable[[], int] = time.time_ns,
        mono_ns: Callable[[], int] = time.monotonic_ns,
        *,
        step_tolerance_ms: int = 1000,
        slew_rate: float = 0.5,
        max_slew_ms: int = 300_000,
    ) -> None:
        if not 0 < slew_rate < 1:
            raise ValueError(f"slew_rate must be between 0 and 1, got {slew_rate}")
        self._wall_ns = wall_ns
        self._mono_ns = mono_ns
        self._tolerance = step_tolerance_ms
        self._slew = slew_rate
        self._max_slew = max_slew_ms
        self.stats = ClockStats()
        self._last = -1  # the last timestamp handed out
        # Anchor: our time at a monotonic instant, and the system clock's then.
        self._mono0 = mono_ns()
        self._ours0 = self._wall0 = wall_ns() // 1_000_000
        self._slewing = False

    def now_ms(self) -> int:
        mono = self._mono_ns()
        wall = self._wall_ns() // 1_000_000
        elapsed = (mono - self._mono0) // 1_000_000
        expected_wall = self._wall0 + elapsed
        jump = wall - expected_wall
        if abs(jump) > self._tolerance:
            ours = self._ours_at(elapsed)
            self._stepped(jump, ours - wall)
            if ours - wall > self._max_slew:
                ours = self._last = wall  # too far ahead to slew: follow the clock back
            # Slew only while our time is ahead: a step forward past it is simply followed.
            self._slewing = ours > wall
            self._reanchor(mono, wall, max(ours, wall))
            elapsed = 0
        ours = self._ours_at(elapsed)
        if self._slewing and ours <= wall:
            log.info("gateway clock back in step with the system clock")
            self._slewing = False
            self._reanchor(mono, wall, wall)
            ours = wall
        elif not self._slewing:
            ours = wall
        ts = max(ours, self._last + 1)
        self._last = ts
        self.stats.ahead_ms = max(0, ts - wall)
        return ts

    def _ours_at(self, elapsed_ms: int) -> int:
        if not self._slewing:
            return self._wall0 + elapsed_ms  # in step: the system clock, had it not jumped
        return self._ours0 + int(elapsed_ms * self._slew)

    def _reanchor(self, mono: int, wall: int, ours: int) -> None:
        self._mono0, self._wall0, self._ours0 = mono, wall, ours

    def _stepped(self, jump_ms: int, ahead_ms: int) -> None:
        if jump_ms > 0:
            self.stats.steps_forward += 1
            log.warning(
                "system clock stepped forward by %.3f s; timestamps follow it. If it is now "
                "wrong, check NTP: the collector refuses readings too far in the future",
                jump_ms / 1000,
            )
            return
        self.stats.steps_back += 1
        if ahead_ms > self._max_slew:
            log.error(
                "system clock stepped back by %.3f s, more than can be slewed; timestamps "
                "follow it back, so readings of the last %.0f s may appear out of order. "
                "Check NTP and the real-time clock",
                -jump_ms / 1000,
                -jump_ms / 1000,
            )
            return
        log.warning(
            "system clock stepped back by %.3f s; timestamps do not go back: they run at "
            "%.0f %% speed until the clock catches up (about %.0f s). Check NTP",
            -jump_ms / 1000,
            self._slew * 100,
            -jump_ms / 1000 / (1 - self._slew),
        )
