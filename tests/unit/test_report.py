from __future__ import annotations

from gateway.report import ReportFilter
from shelterwatch.contract import Quality


def test_deadband_against_last_reported_value() -> None:
    f = ReportFilter({"p": 1.0})
    f.snapshot({"p": 10.0}, {})
    assert f.changes({"p": 10.6}, {}) == ({}, {})
    # Slow drift is reported once it adds up past the deadband.
    assert f.changes({"p": 11.2}, {}) == ({"p": 11.2}, {})
    assert f.changes({"p": 11.9}, {}) == ({}, {})


def test_zero_deadband_reports_any_change_and_bools_and_strings() -> None:
    f = ReportFilter({})
    f.snapshot({"n": 1, "b": False, "s": "clean"}, {})
    assert f.changes({"n": 1, "b": False, "s": "clean"}, {}) == ({}, {})
    assert f.changes({"n": 2, "b": True, "s": "filtered"}, {}) == (
        {"n": 2, "b": True, "s": "filtered"},
        {},
    )


def test_quality_changes_are_reported_once_and_recovery_resends_value() -> None:
    f = ReportFilter({"p": 5.0})
    f.snapshot({"p": 1.0}, {})
    assert f.changes({}, {"p": Quality.BAD}) == ({}, {"p": Quality.BAD})
    assert f.changes({}, {"p": Quality.BAD}) == ({}, {})
    # Back to good: the value goes out even though it is within the deadband.
    assert f.changes({"p": 1.0}, {}) == ({"p": 1.0}, {})
