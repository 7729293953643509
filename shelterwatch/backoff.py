"""Capped exponential backoff with full jitter, for every reconnect loop."""

from __future__ import annotations

import random

__all__ = ["Backoff"]

# Its own generator: jitter must not move the global `random` state, which a program (or a
# test's property-based generator) may be relying on in another thread.
_JITTER = random.SystemRandom()


class Backoff:
    def __init__(self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("need 0 < initial <= maximum")
        self._initial = initial
        self._maximum = maximum
        self._factor = factor
        self._attempt = 0

    def next(self) -> float:
        """Seconds to wait before the next attempt."""
        ceiling = min(self._maximum, self._initial * self._factor**self._attempt)
        self._attempt += 1
        # Full jitter keeps a fleet of gateways from reconnecting in lockstep.
        return _JITTER.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._attempt = 0
