"""Evidence detectors: pure functions over sample series (control/maintenance/evidence.py)."""

from __future__ import annotations

from control.maintenance.evidence import door_cycles, fan_runs, generator_starts
from shelterwatch.store import FieldValue, HistoryPoint

T0 = 1_788_000_000_000
MIN = 60_000


def series(*points: tuple[int, FieldValue]) -> list[HistoryPoint]:
    return [HistoryPoint(T0 + m * MIN, v) for m, v in points]


def test_a_door_cycle_is_open_then_closed_again() -> None:
    position = series(
        (0, "closed"),
        (1, "closed"),
        (5, "moving"),
        (6, "open"),
        (7, "open"),
        (9, "moving"),
        (10, "locked"),
        (20, "closed"),
    )
    found = door_cycles(position)
    assert [f.ts_ms for f in found] == [T0 + 10 * MIN]
    assert "locked" in found[0].detail


def test_a_door_that_only_moves_or_stays_open_was_not_cycled() -> None:
    assert door_cycles(series((0, "closed"), (1, "moving"), (2, "closed"))) == []
    assert door_cycles(series((0, "closed"), (1, "open"), (2, "open"))) == []


def test_the_cycle_counter_shows_a_cycle_the_position_series_missed() -> None:
    # Position samples lost (a gap), but the controller counted a cycle.
    counter = series((0, 41), (30, 41), (60, 42), (61, 42))
    found = door_cycles([], counter)
    assert [f.ts_ms for f in found] == [T0 + 60 * MIN]
    # One cycle seen both ways counts once.
    both = door_cycles(series((55, "open"), (58, "closed")), counter)
    assert [f.ts_ms for f in both] == [T0 + 58 * MIN]


def test_a_fan_run_counts_from_one_hour() -> None:
    running = series((0, False), (10, True), (40, True), (70, False), (100, True), (130, False))
    found = fan_runs(running, 3600)
    assert [f.ts_ms for f in found] == [T0 + 70 * MIN]
    assert found[0].detail == "fan ran 1.0 h"
    assert fan_runs(running, 1800) == fan_runs(running, 1800)[:2]
    assert len(fan_runs(running, 1800)) == 2


def test_a_run_still_going_counts_up_to_its_last_sample_only() -> None:
    assert [f.ts_ms for f in fan_runs(series((0, True), (61, True)))] == [T0 + 61 * MIN]
    assert fan_runs(series((0, True), (59, True))) == []
    # Numbers (a coil read as 0/1) and junk values
    assert len(fan_runs(series((0, 1), (30, "bad"), (90, 0)))) == 1


def test_a_generator_start_is_false_then_true() -> None:
    running = series((0, True), (1, False), (2, True), (3, True), (4, False), (5, True))
    assert [f.ts_ms for f in generator_starts(running)] == [T0 + 2 * MIN, T0 + 5 * MIN]
    # Running from the first sample on: when it started is not in the series.
    assert generator_starts(series((0, True), (1, True))) == []
