"""Telemetry checks and the ventilation interlocks, on readings alone."""

from __future__ import annotations

import pytest

from control.conversions.checks import evaluate, interlock, readings_of
from control.conversions.plans import Check, WriteCommand
from shelterwatch.store import LatestValue

NOW = 1_000_000


def _readings(door_closed: bool | None, mode: str, overpressure: float = 0.0, age_ms: int = 0):  # type: ignore[no-untyped-def]
    rows = [
        LatestValue("vent", "ventilation", "mode", mode, NOW - age_ms),
        LatestValue("vent", "ventilation", "overpressure", overpressure, NOW - age_ms),
    ]
    if door_closed is not None:
        rows.append(LatestValue("door", "door", "closed", door_closed, NOW - age_ms))
    return readings_of(rows, NOW, max_age_s=5)


FILTERED = WriteCommand(device="vent", point="mode", value="filtered")


def test_checks_hold_fail_or_are_unknown() -> None:
    checks = [
        Check(device="vent", point="mode", eq="filtered"),
        Check(device="vent", point="overpressure", ge=30),
    ]
    assert evaluate(checks, _readings(True, "filtered", 35)).holds is True
    failed = evaluate(checks, _readings(True, "filtered", 12))
    assert failed.holds is False and "needs vent.overpressure ≥ 30" in failed.detail
    # Stale readings neither verify nor contradict.
    assert evaluate(checks, _readings(True, "filtered", 35, age_ms=6000)).holds is None
    # A bool is not a number and 1 is not true.
    assert (
        evaluate([Check(device="door", point="closed", eq=1)], _readings(True, "clean")).holds
        is False
    )


def test_filtered_with_a_door_open_is_refused_with_the_reason() -> None:
    reason = interlock(FILTERED, _readings(False, "isolated"))
    assert reason is not None and "protective door door is open" in reason
    assert "no fresh reading" in (
        interlock(FILTERED, _readings(True, "isolated", age_ms=9000)) or ""
    )
    assert "cannot be shown closed" in (interlock(FILTERED, _readings(None, "isolated")) or "")
    assert interlock(FILTERED, _readings(True, "isolated")) is None


@pytest.mark.parametrize(
    ("now", "target", "refused"),
    [
        ("clean", "isolated", False),
        ("clean", "filtered", True),
        ("isolated", "filtered", False),
        ("filtered", "clean", False),
        ("filtered", "isolated", False),
        ("isolated", "clean", False),
    ],
)
def test_the_mode_sequence(now: str, target: str, refused: bool) -> None:
    command = WriteCommand(device="vent", point="mode", value=target)
    reason = interlock(command, _readings(True, now))
    assert (reason is not None) is refused
    if refused:
        assert reason is not None and "清洁 → 隔绝 → 滤毒" in reason


def test_other_writes_are_not_interlocked() -> None:
    pump = WriteCommand(device="water", point="pump_running", value=True)
    assert interlock(pump, _readings(False, "clean")) is None
