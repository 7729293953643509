"""A simulated month of one shelter, time-accelerated: samples injected into a SQLite store at
fixed times (no physics run for a month), the service assessed with a fixed clock. It yields
the expected due, done-by-telemetry, done-by-a-person and overdue items, the readiness that
follows, and a report that matches them line by line."""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from control_helpers import control_settings
from sqlalchemy import select

from control.db import AuditEntry, Database
from control.maintenance import MaintenanceService, report_csv, report_html
from control.maintenance.reports import build_report
from shelterwatch.store import FieldValue, Sample, TimeSeriesStore
from shelterwatch.store.factory import open_store

pytestmark = pytest.mark.integration

T0 = int(datetime.datetime(2026, 9, 1, tzinfo=datetime.UTC).timestamp()) * 1000
DAY, HOUR, MIN = 86_400_000, 3_600_000, 60_000
SITE, GW = "shelter-01", "gw-shelter-01"


def at(day: float, hour: float = 0, minute: float = 0) -> int:
    return T0 + int(day * DAY + hour * HOUR + minute * MIN)


def sample(kind: str, device: str, ts: int, **fields: FieldValue) -> Sample:
    return Sample(kind, SITE, GW, device, ts, fields)


# The month, as the gateways would have reported it (by exception, plus snapshots).
MONTH = [
    # Two doors. door-1 is opened and closed on day 10; door-2 on day 12 (counter only: its
    # position samples were lost).
    sample("door", "door-1", at(0), position="closed", cycle_count=100),
    sample("door", "door-1", at(10, 10), position="open"),
    sample("door", "door-1", at(10, 10, 2), position="closed", cycle_count=101),
    sample("door", "door-2", at(0), position="locked", cycle_count=7),
    sample("door", "door-2", at(12, 9), position="locked", cycle_count=8),
    # The fan runs 30 min on day 5: not the hour the programme asks for.
    sample("ventilation", "vent-1", at(0), fan_running=False, filter_dp=170.0),
    sample("ventilation", "vent-1", at(5, 9), fan_running=True),
    sample("ventilation", "vent-1", at(5, 9, 30), fan_running=False),
    # The generator is started on day 15.
    sample("power", "power-1", at(0), generator_running=False, mains_present=True),
    sample("power", "power-1", at(15, 14), generator_running=True),
    sample("power", "power-1", at(15, 14, 40), generator_running=False),
    sample("power", "power-1", at(30), generator_running=False, mains_present=True),
]
# Snapshots every 6 h keep every device fresh to the end of the month.
MONTH += [
    sample("ventilation", "vent-1", at(d / 4), fan_running=False, filter_dp=170.0)
    for d in range(21, 31 * 4)
]

# What the month must give at its end (day 31), item by item: state, source, device.
EXPECTED_AT_END = {
    "door-cycle": ("done", "telemetry", "door-1"),  # the older of the two doors' cycles
    "fan-run": ("overdue", None, None),  # ran 30 min only
    "generator": ("done", "telemetry", "power-1"),
    "water-tanks": ("done", "manual", ""),
    "airtight-valves": ("overdue", None, None),  # monthly, never confirmed
    "heaters": ("overdue", None, None),
}


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[MaintenanceService, Database]]:
    settings = control_settings(
        f"sqlite:///{tmp_path / 'control.db'}",
        f"sqlite:///{tmp_path / 'store.db'}",
        maintenance={"start_date": "2026-09-01"},
    )
    store: TimeSeriesStore
    async with Database(settings.database_url) as db, open_store(settings.store_url) as store:
        await db.upgrade()
        await store.write(MONTH)
        yield MaintenanceService(settings, db, store), db


async def test_a_month_gives_due_done_and_overdue_items_and_a_matching_report(
    world: tuple[MaintenanceService, Database],
) -> None:
    service, db = world
    # Day 9: nothing done yet, monthly items still ahead.
    day9 = {s.item.key: s.state for s in await service.status(SITE, now=at(9))}
    assert day9["door-cycle"] == day9["fan-run"] == "scheduled"
    # Day 11: door-1 cycled, door-2 not yet: the item covers every door.
    day11 = {s.item.key: s for s in await service.status(SITE, now=at(11))}
    assert day11["door-cycle"].state == "scheduled"
    # A person confirms the tanks cleaned on day 15 (audited).
    confirmed = await service.confirm(
        SITE, "water-tanks", note="cleaned, disinfected, sample sent", actor="li", done_ms=at(15)
    )
    assert confirmed.last is not None and confirmed.last.source == "manual"
    async with db.session() as s:
        audit = (
            await s.scalars(select(AuditEntry).where(AuditEntry.action == "maintenance.confirm"))
        ).one()
    assert audit.actor == "li" and audit.target == f"{SITE}/water-tanks"
    # Day 25: the monthly items come due (7 days' lead); the doors are done.
    day25 = {s.item.key: s.state for s in await service.status(SITE, now=at(25))}
    assert (day25["door-cycle"], day25["fan-run"], day25["heaters"]) == ("done", "due", "due")

    end = {s.item.key: s for s in await service.status(SITE, now=at(31), since=T0)}
    for key, (state, source, device) in EXPECTED_AT_END.items():
        got = end[key]
        assert got.state == state, key
        assert (got.last.source if got.last else None) == source, key
        assert (got.last.device if got.last else None) == device, key
    assert end["door-cycle"].last is not None and end["door-cycle"].last.ts_ms == at(10, 10, 2)
    assert end["door-cycle"].due_ms == at(40, 10, 2)
    assert [c.device for c in end["door-cycle"].done_in_period] == ["door-1", "door-2"]
    assert end["generator"].last is not None and end["generator"].last.ts_ms == at(15, 14)
    # Everything else: the monthly ones overdue, the longer ones still scheduled.
    for key, st in end.items():
        if key not in EXPECTED_AT_END:
            assert st.state == ("overdue" if st.item.period_days <= 30 else "scheduled"), key

    # Readiness at the end: each overdue item costs its weight, and no drill on record.
    readiness = await service.readiness(SITE, now=at(31), alerts=[])
    causes = {c.key: c for c in readiness.causes}
    overdue = [k for k, s in end.items() if s.state == "overdue"]
    assert causes["reason.maintenance_overdue"].count == len(overdue)
    assert causes["reason.maintenance_overdue"].points == sum(end[k].item.weight for k in overdue)
    assert causes["reason.drill_never"].points == 10
    assert readiness.score == 100 - sum(c.points for c in readiness.causes)

    # The report for the month matches the items line by line.
    report = await build_report(
        service, [SITE], scope="site", name=SITE, since_ms=T0, until_ms=at(31)
    )
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    items = [r for r in rows if r["record"] == "item"]
    assert [r["item"] for r in items] == [i.key for i in service.programme.items]
    for row in items:
        st = end[row["item"]]
        assert row["state"] == st.state
        assert row["source"] == (st.last.source if st.last else "")
        assert row["done_in_period"] == str(len(st.done_in_period))
    by_item = {r["item"]: r for r in items}
    assert by_item["door-cycle"]["last_done"] == "2026-09-11 10:02"
    assert by_item["door-cycle"]["evidence"] == "door-1: opened and closed again"
    assert by_item["generator"]["evidence"] == "power-1: generator started"
    assert by_item["water-tanks"]["evidence"] == "li: cleaned, disinfected, sample sent"
    assert by_item["fan-run"]["last_done"] == ""
    page = report_html(report)
    assert "door-1: opened and closed again" in page and page.count("<tr class='overdue'>") == len(
        overdue
    )


async def test_a_run_of_an_hour_later_in_the_month_clears_the_fan_item(
    world: tuple[MaintenanceService, Database],
) -> None:
    service, _ = world
    await service.store.write(
        [
            sample("ventilation", "vent-1", at(31, 8), fan_running=True),
            sample("ventilation", "vent-1", at(31, 9, 5), fan_running=False),
        ]
    )
    got = {s.item.key: s for s in await service.status(SITE, now=at(32))}
    assert got["fan-run"].state == "done"
    assert got["fan-run"].last is not None and got["fan-run"].last.detail == "fan ran 1.1 h"
    # Found once: assessing again records nothing new.
    again = {s.item.key: s for s in await service.status(SITE, now=at(32))}
    assert len(again["fan-run"].done_in_period) == 1
