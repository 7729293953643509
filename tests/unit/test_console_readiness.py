"""A site's readiness, from the verdicts the platform already has (control/console/readiness.py)."""

from __future__ import annotations

from control.console.readiness import AlertFact, Readiness, SiteFacts, assess
from control.console.thresholds import thresholds_for
from shelterwatch.store import LatestValue

T0 = 1_758_160_920_000
READINGS = (
    LatestValue("vent", "ventilation", "overpressure", 38.0, T0),
    LatestValue("vent", "ventilation", "mode", "filtered", T0 + 5),
    LatestValue("door", "door", "closed", True, T0 - 10),
    # Alert events live in the store too; they are not a device.
    LatestValue("vent", "alert", "active", True, T0 + 99),
)


def test_no_findings_is_ready_with_its_devices_counted() -> None:
    got = assess(SiteFacts("s", READINGS, sirens=2))
    assert got.state is Readiness.READY
    assert (got.devices, got.last_reading_ms, got.reasons) == (2, T0 + 5, ())


def test_no_readings_at_all_is_no_data_whatever_else() -> None:
    got = assess(SiteFacts("s", (), [AlertFact("critical", "threshold", "vent")]))
    assert got.state is Readiness.NO_DATA
    assert got.reasons == ("reason.no_data", "reason.critical_alerts")


def test_the_worst_finding_wins_and_every_finding_is_listed() -> None:
    facts = SiteFacts(
        "s",
        READINGS,
        alerts=[
            AlertFact("minor", "threshold", "env"),
            AlertFact("major", "offline", "door"),
            AlertFact("minor", "stale", "door"),
        ],
        flagged_sirens=1,
    )
    got = assess(facts)
    assert got.state is Readiness.DEGRADED
    assert got.not_reporting == 1  # one device, two alerts about it
    assert got.alerts_by_severity == {"minor": 2, "major": 1}
    assert got.reasons == (
        "reason.major_alerts",
        "reason.not_reporting",
        "reason.sirens_flagged",
        "reason.minor_alerts",
    )
    critical = assess(SiteFacts("s", READINGS, [AlertFact("critical", "threshold", "vent")]))
    assert critical.state is Readiness.NOT_READY
    warning = assess(SiteFacts("s", READINGS, [AlertFact("warning", "trend", "vent")]))
    assert warning.state is Readiness.ATTENTION


def test_limits_are_drawn_for_the_points_the_rule_pack_watches() -> None:
    assert [t.value for t in thresholds_for("ventilation", "overpressure")] == [30, 50]
    assert [t.value for t in thresholds_for("environment", "co2")] == [2.5, 4.0]
    assert thresholds_for("ventilation", "airflow") == ()
