"""Login attempts per client address per minute: a sliding window held in memory.

The window is per process. With several replicas behind a load balancer each counts its own
share, so the effective limit is at most replicas × the setting; the per-account lockout (kept
in the database) is what holds across replicas.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

__all__ = ["LoginRateLimiter"]

_WINDOW_S = 60.0


class LoginRateLimiter:
    def __init__(
        self,
        per_minute: int,
        *,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.max_clients = max_clients
        self._clock = clock
        # Most recently used last, so the stalest client is the first to forget.
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, client: str) -> float | None:
        """Count one attempt; None if allowed, else the seconds to wait (Retry-After)."""
        now = self._clock()
        window = self._attempts.get(client)
        if window is None:
            window = self._attempts[client] = deque()
            # Bounded memory under a spray of addresses: forget the stalest clients.
            while len(self._attempts) > self.max_clients:
                self._attempts.popitem(last=False)
        self._attempts.move_to_end(client)
        while window and window[0] <= now - _WINDOW_S:
            window.popleft()
        if len(window) >= self.per_minute:
            return max(window[0] + _WINDOW_S - now, 0.0)
        window.append(now)
        return None

    @staticmethod
    def retry_after(wait_s: float) -> str:
        return str(max(1, math.ceil(wait_s)))
