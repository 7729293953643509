"""The periodic maintenance sweep: every ``maintenance.sweep_interval_s`` on every replica.

Each round runs what ``POST /api/v1/maintenance/sweep`` runs (MaintenanceService.sweep): work
orders for open degradation alerts and items due or overdue, telemetry evidence, and every
site's readiness written to the time-series store. Replicas need no coordination: each work
order has a unique origin (a second replica's insert fails and makes nothing), evidence is
recorded once per device and moment, and the readiness points sit on the start of their
interval, so two replicas in the same interval write the same points.

A round that fails (the database or the store away) is logged and the next one runs as
usual: the loop stops only with the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Self

from control.maintenance.service import MaintenanceService
from control.sirens import SirenService

__all__ = ["SERVICE_ACTOR", "MaintenanceSweeper"]

log = logging.getLogger(__name__)

# The actor of what the sweep does on its own (audited work orders), as other service loops.
SERVICE_ACTOR = "control-service"


class MaintenanceSweeper:
    """``async with MaintenanceSweeper(service, sirens, interval_s):`` runs the loop for the
    block; ``interval_s`` 0 runs none."""

    def __init__(
        self, service: MaintenanceService, sirens: SirenService | None, interval_s: float
    ) -> None:
        self.service = service
        self.sirens = sirens
        self.interval_s = interval_s
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        if self.interval_s > 0:
            self._task = asyncio.create_task(self.run(), name="maintenance-sweep")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        # The first round waits one interval: a replica that restarts does not sweep at once,
        # and neither does a test's service that has just started.
        failing = False
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sweep_once()
            except Exception as exc:
                # Anything: the database, the store, a bug in one site's data. Said once in
                # full, then briefly, until a round succeeds again.
                if failing:
                    log.warning("maintenance: the sweep failed again: %r", exc)
                else:
                    log.exception(
                        "maintenance: the sweep failed; it runs again in %g s", self.interval_s
                    )
                failing = True
                continue
            if failing:
                log.info("maintenance: the sweep runs again")
            failing = False

    async def sweep_once(self) -> None:
        result = await self.service.sweep(
            actor=SERVICE_ACTOR, sirens=self.sirens, slot_ms=int(self.interval_s * 1000)
        )
        self.rounds += 1
        if result.orders:
            log.info(
                "maintenance: the sweep made %d work order(s): %s",
                len(result.orders),
                ", ".join(o.id for o in result.orders),
            )
