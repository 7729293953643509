"""The runner with a hand-moved clock and a recording siren service: each step fires once at
its time, a step found too late is recorded as missed, and a refusal is recorded as failed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from servers import wait_until

from control.auth import Role
from control.db import Database
from control.schedules import ManualClock, ScheduleCreate, ScheduleService, records
from shelterwatch.contract import SirenKind
from shelterwatch.signals import builtin_signals

SHANGHAI = ZoneInfo("Asia/Shanghai")
SUNDAY = datetime(2026, 11, 29, 12, 0, tzinfo=SHANGHAI)
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=SHANGHAI)


@dataclass
class Started:
    id: str


@dataclass
class RecordingStarter:
    """The siren service's two calls, recorded; ``refuse`` makes every request fail."""

    refuse: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

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
    ) -> Started:
        self.calls.append(
            {
                "kind": kind,
                "signal": signal,
                "sirens": sirens,
                "groups": groups,
                "actor": actor,
                "reason": reason,
                "schedule": schedule,
                "exercise": exercise,
            }
        )
        if self.refuse:
            raise ValueError(self.refuse)
        return Started(id=f"act-{len(self.calls)}")

    async def resolve(self, *, sirens: list[str], groups: list[str]) -> Sequence[object]:
        return [*sirens, *groups]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database(f"sqlite:///{tmp_path / 'control.db'}") as database:
        await database.upgrade()
        yield database


def service(
    db: Database, starter: RecordingStarter, clock: ManualClock, *, run: bool = False
) -> ScheduleService:
    return ScheduleService(db, builtin_signals(), starter, clock=clock, replica="r1", run=run)


MONDAY_SILENT = ScheduleCreate(
    name="monday-silent",
    rule="FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0",
    sirens=["s1", "s2"],
    groups=["district-a"],
    template="weekly_silent_test",
)


async def test_a_step_fires_once_at_its_time(db: Database) -> None:
    clock, starter = ManualClock(SUNDAY), RecordingStarter()
    async with service(db, starter, clock) as svc:
        await svc.create(MONDAY_SILENT, actor="duty", role=Role.DUTY_OFFICER)
        clock.set(MONDAY_9 - timedelta(seconds=1))
        assert await svc.runner.run_due() == []
        clock.set(MONDAY_9)
        [row] = await svc.runner.run_due()
        assert await svc.runner.run_due() == []
    assert (row.state, row.activation, row.step) == ("fired", "act-1", 1)
    [call] = starter.calls
    assert call["actor"] == "schedule:monday-silent" and call["schedule"] == "monday-silent"
    assert call["kind"] is SirenKind.SILENT_TEST and call["signal"] is None
    assert (call["sirens"], call["groups"]) == (["s1", "s2"], ["district-a"])
    assert "monday-silent" in call["reason"] and "2026-11-30T09:00:00+08:00" in call["reason"]


async def test_a_test_day_fires_each_step_at_its_own_time(db: Database) -> None:
    clock, starter = ManualClock(datetime(2026, 9, 17, tzinfo=SHANGHAI)), RecordingStarter()
    spec = ScheduleCreate(name="test-day", sirens=["s1"], template="test_day_a")
    async with service(db, starter, clock) as svc:
        await svc.create(spec, actor="cmdr", role=Role.COMMANDER)
        for minute, fired in ((0, ["prealert"]), (7, []), (8, ["air_raid"]), (16, ["all_clear"])):
            clock.set(datetime(2026, 9, 18, 10, minute, tzinfo=SHANGHAI))
            rows = await svc.runner.run_due()
            assert [r.signal for r in rows] == fired, minute
    assert [c["kind"] for c in starter.calls] == [SirenKind.AUDIBLE_TEST] * 3


async def test_a_step_found_after_the_grace_is_missed_not_sounded(db: Database) -> None:
    clock, starter = ManualClock(SUNDAY), RecordingStarter()
    async with service(db, starter, clock) as svc:
        await svc.create(MONDAY_SILENT, actor="duty", role=Role.DUTY_OFFICER)
        clock.set(MONDAY_9 + timedelta(minutes=10, seconds=1))
        [row] = await svc.runner.run_due()
    assert row.state == "missed" and not starter.calls
    assert (
        "10 min 1 s late, past the 10 min grace" in row.detail
        and "2026-11-30T09:00:00+08:00" in row.detail
    )


async def test_a_step_found_within_the_grace_still_fires(db: Database) -> None:
    clock, starter = ManualClock(SUNDAY), RecordingStarter()
    async with service(db, starter, clock) as svc:
        await svc.create(MONDAY_SILENT, actor="duty", role=Role.DUTY_OFFICER)
        clock.set(MONDAY_9 + timedelta(minutes=9))
        [row] = await svc.runner.run_due()
    assert row.state == "fired"


async def test_a_refused_activation_is_recorded_as_failed_with_the_reason(db: Database) -> None:
    clock, starter = ManualClock(SUNDAY), RecordingStarter(refuse="unknown siren s2")
    async with service(db, starter, clock) as svc:
        await svc.create(MONDAY_SILENT, actor="duty", role=Role.DUTY_OFFICER)
        clock.set(MONDAY_9)
        await svc.runner.run_due()
        [report] = await svc.runs("monday-silent", limit=10, state=None)
    assert (report.state, report.activation) == ("failed", None)
    assert "unknown siren s2" in report.detail


async def test_steps_due_before_the_schedule_existed_are_not_its_business(db: Database) -> None:
    clock, starter = ManualClock(MONDAY_9 + timedelta(hours=1)), RecordingStarter()
    async with service(db, starter, clock) as svc:
        await svc.create(MONDAY_SILENT, actor="duty", role=Role.DUTY_OFFICER)
        assert await svc.runner.run_due() == []


async def test_the_background_runner_fires_when_the_clock_reaches_the_step(db: Database) -> None:
    clock, starter = ManualClock(SUNDAY), RecordingStarter()
    async with service(db, starter, clock, run=True) as svc:
        await svc.create(MONDAY_SILENT, actor="duty", role=Role.DUTY_OFFICER)
        clock.set(MONDAY_9)

        async def fired() -> bool:
            rows = await records.runs_of(db, "monday-silent")
            return bool(rows) and rows[0].state == "fired"

        await wait_until(fired, 10, "the Monday step to fire")
    assert len(starter.calls) == 1
