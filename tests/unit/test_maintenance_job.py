"""The periodic maintenance sweep's loop: it runs every interval, survives a failing round
(logged, then the next round as usual), stops with its block, and 0 runs nothing. Also the
console's words for every work-order state and history action, in both languages."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest

from control.console.i18n import LANGS, catalogue
from control.maintenance import MaintenanceService
from control.maintenance.job import SERVICE_ACTOR, MaintenanceSweeper
from control.maintenance.service import SweepResult


class FlakyService:
    """Stands in for MaintenanceService.sweep: fails the rounds named in ``fail``."""

    def __init__(self, fail: set[int]) -> None:
        self.fail = fail
        self.calls: list[dict[str, Any]] = []
        self.done = asyncio.Event()

    async def sweep(self, **kw: Any) -> SweepResult:
        self.calls.append(kw)
        if len(self.calls) >= 4:
            self.done.set()
        if len(self.calls) in self.fail:
            raise OSError(f"store away (round {len(self.calls)})")
        return SweepResult([], [], True)


async def test_the_loop_survives_failing_rounds_and_stops_with_its_block(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = FlakyService(fail={1, 2})
    caplog.set_level(logging.INFO, logger="control.maintenance.job")
    sweeper = MaintenanceSweeper(cast(MaintenanceService, service), None, 0.01)
    async with sweeper:
        await asyncio.wait_for(service.done.wait(), 5)
    rounds = len(service.calls)
    await asyncio.sleep(0.05)
    assert len(service.calls) == rounds  # stopped with the block
    assert sweeper.rounds == rounds - 2  # the two failing rounds did not count
    assert all(c == {"actor": SERVICE_ACTOR, "sirens": None, "slot_ms": 10} for c in service.calls)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("maintenance: the sweep failed; it runs again in 0.01 s")
    assert caplog.records[0].exc_info is not None  # the first failure with its traceback
    assert messages[1] == "maintenance: the sweep failed again: OSError('store away (round 2)')"
    assert messages[2] == "maintenance: the sweep runs again"


async def test_an_interval_of_zero_runs_no_loop() -> None:
    service = FlakyService(fail=set())
    async with MaintenanceSweeper(cast(MaintenanceService, service), None, 0) as sweeper:
        await asyncio.sleep(0.05)
    assert service.calls == [] and sweeper.rounds == 0


def test_every_work_order_state_and_action_has_words() -> None:
    keys = {f"wo_state.{s}" for s in ("open", "in_progress", "done", "cancelled")}
    keys |= {f"wo_action.{a}" for a in ("create", "start", "close", "cancel", "create_dropped")}
    for lang in LANGS:
        assert not keys - set(catalogue(lang)), (lang, sorted(keys - set(catalogue(lang))))
