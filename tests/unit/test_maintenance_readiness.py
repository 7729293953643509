"""Readiness explains every point lost: one test per cause (control/maintenance/readiness.py)."""

from __future__ import annotations

import pytest

from control.console.readiness import (
    AlertFact,
    DrillFact,
    OverdueFact,
    Readiness,
    SiteFacts,
    assess,
)
from control.maintenance.readiness import RULES, band, score
from shelterwatch.store import LatestValue

NOW = 1_790_000_000_000
DAY = 86_400_000
READINGS = (LatestValue("vent", "ventilation", "overpressure", 38.0, NOW),)
RECENT_DRILL = DrillFact(NOW - 30 * DAY)


def facts(**kw: object) -> SiteFacts:
    base: dict[str, object] = {
        "site": "s",
        "latest": READINGS,
        "drill": RECENT_DRILL,
        "now_ms": NOW,
    }
    return SiteFacts(**(base | kw))  # type: ignore[arg-type]


# One row per cause: the facts that produce it, the points it costs, the state it leads to.
CASES = {
    "reason.no_data": (facts(latest=()), 100, Readiness.NO_DATA),
    "reason.critical_alerts": (
        facts(alerts=[AlertFact("critical", "threshold", "vent")]),
        30,
        Readiness.NOT_READY,
    ),
    "reason.major_alerts": (
        facts(alerts=[AlertFact("major", "threshold", "vent")] * 2),
        20,
        Readiness.DEGRADED,
    ),
    "reason.not_reporting": (
        facts(alerts=[AlertFact("minor", "offline", "door")]),
        10,  # and the minor alert's own 3
        Readiness.DEGRADED,
    ),
    "reason.sirens_flagged": (facts(flagged_sirens=1, sirens=1), 10, Readiness.DEGRADED),
    "reason.minor_alerts": (
        facts(alerts=[AlertFact("warning", "trend", "vent")] * 5),
        9,  # 5 × 3, capped at 9
        Readiness.ATTENTION,
    ),
    "reason.maintenance_overdue": (
        facts(overdue=[OverdueFact("door-cycle", 10, NOW - DAY), OverdueFact("pumps", 3, NOW)]),
        13,
        Readiness.ATTENTION,
    ),
    "reason.drill_never": (facts(drill=DrillFact(None)), 10, Readiness.ATTENTION),
    "reason.drill_stale": (facts(drill=DrillFact(NOW - 400 * DAY)), 10, Readiness.ATTENTION),
    "reason.drill_missed": (
        facts(drill=DrillFact(NOW - 10 * DAY, missed=True)),
        5,
        Readiness.ATTENTION,
    ),
}


def test_every_cause_has_a_case() -> None:
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("key", sorted(CASES))
def test_each_cause_costs_its_points_and_is_explained(key: str) -> None:
    given, points, state = CASES[key]
    got = assess(given)
    cause = next(c for c in got.causes if c.key == key)
    assert cause.points == points
    assert got.score == max(0, 100 - sum(c.points for c in got.causes))
    assert got.state is state
    assert key in got.reasons


def test_a_ready_site_keeps_every_point() -> None:
    got = assess(facts())
    assert (got.state, got.score, got.causes) == (Readiness.READY, 100, ())


def test_the_overdue_cause_names_its_items_and_is_capped() -> None:
    many = [OverdueFact(f"item-{i}", 10, NOW) for i in range(5)]
    cause = assess(facts(overdue=many)).causes[0]
    assert (cause.points, cause.count) == (30, 5)
    assert cause.detail.startswith("item-0, item-1")


def test_the_score_band_can_make_the_state_worse_than_any_single_finding() -> None:
    # Overdue maintenance (30) and a stale drill (10) and minor alerts (9): attention each,
    # but 51 points together is a degraded site.
    got = assess(
        facts(
            overdue=[OverdueFact(f"i{i}", 10, NOW) for i in range(3)],
            drill=DrillFact(NOW - 400 * DAY),
            alerts=[AlertFact("minor", "threshold", "x")] * 3,
        )
    )
    assert got.score == 51 and got.state is Readiness.DEGRADED
    assert [band(p) for p in (100, 85, 84, 60, 59, 30, 29, 0)] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert score(()) == 100


def test_drills_not_assessed_cost_nothing() -> None:
    assert assess(facts(drill=None)).score == 100
