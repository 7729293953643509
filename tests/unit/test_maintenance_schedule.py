"""Due, done, scheduled and overdue per item (control/maintenance/schedule.py)."""

from __future__ import annotations

from control.maintenance.programme import Evidence, Item
from control.maintenance.schedule import DAY_MS, Completion, item_status

T0 = 1_788_000_000_000
MONTHLY = Item(
    key="door-cycle",
    equipment="door",
    title_zh="门",
    title_en="Doors",
    period_days=30,
    evidence=Evidence(detector="door_cycle"),
)
HALF_YEARLY = Item(key="gauge", equipment="v", title_zh="g", title_en="g", period_days=182)


def status(item: Item, done: list[Completion], day: float, devices: tuple[str, ...] = ()) -> str:
    return item_status(
        item, done, devices=devices, now_ms=T0 + int(day * DAY_MS), anchor_ms=T0, lead_days=7
    ).state


def test_a_new_programme_is_scheduled_then_due_then_overdue() -> None:
    assert status(MONTHLY, [], 1) == "scheduled"
    assert status(MONTHLY, [], 23) == "due"  # 7 days before day 30
    assert status(MONTHLY, [], 30) == "due"
    assert status(MONTHLY, [], 30.01) == "overdue"
    assert status(HALF_YEARLY, [], 30) == "scheduled"


def test_a_completion_restarts_the_period() -> None:
    done = [Completion("door-cycle", T0 + 10 * DAY_MS, "manual", actor="li", note="ok")]
    assert status(MONTHLY, done, 11) == "done"
    assert status(MONTHLY, done, 35) == "due"
    assert status(MONTHLY, done, 41) == "overdue"
    got = item_status(MONTHLY, done, devices=(), now_ms=T0 + 11 * DAY_MS, anchor_ms=T0, lead_days=7)
    assert got.due_ms == T0 + 40 * DAY_MS and got.last == done[0]
    # A completion after "now" (a replayed month) does not count yet.
    assert status(MONTHLY, done, 5) == "scheduled"


def test_telemetry_must_cover_every_device_of_the_kind() -> None:
    one = Completion("door-cycle", T0 + 3 * DAY_MS, "telemetry", device="door-1")
    two = Completion("door-cycle", T0 + 8 * DAY_MS, "telemetry", device="door-2")
    assert status(MONTHLY, [one], 10, ("door-1", "door-2")) == "scheduled"
    got = item_status(
        MONTHLY,
        [one, two],
        devices=("door-1", "door-2"),
        now_ms=T0 + 10 * DAY_MS,
        anchor_ms=T0,
        lead_days=7,
    )
    # Done when the last of them was: door-1 on day 3 sets the next due date.
    assert (got.state, got.last, got.due_ms) == ("done", one, T0 + 33 * DAY_MS)


def test_the_period_lists_every_completion_in_it() -> None:
    done = [
        Completion("door-cycle", T0 + d * DAY_MS, "telemetry", device="door-1") for d in (2, 9, 40)
    ]
    got = item_status(
        MONTHLY,
        done,
        devices=("door-1",),
        now_ms=T0 + 31 * DAY_MS,
        anchor_ms=T0,
        lead_days=7,
        since_ms=T0,
    )
    assert [c.ts_ms for c in got.done_in_period] == [T0 + 2 * DAY_MS, T0 + 9 * DAY_MS]
