"""Recurrence rules: what is refused and why, and next runs in a zone without DST and in one
with it."""

from __future__ import annotations

import time
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from control.schedules.plan import check
from control.schedules.recurrence import Recurrence, parse_rule, zone_of
from control.schedules.spec import ScheduleFields, Step
from shelterwatch.contract import SirenKind
from shelterwatch.signals import builtin_signals

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
MONDAY_9 = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"


def rule(text: str, zone: ZoneInfo = SHANGHAI, starts: date = date(2026, 1, 1)) -> Recurrence:
    parsed = parse_rule(text, zone, starts)
    assert isinstance(parsed, Recurrence), parsed
    return parsed


def refusal(text: str) -> str:
    parsed = parse_rule(text, SHANGHAI, date(2026, 1, 1))
    assert isinstance(parsed, list), f"{text} was accepted"
    return " | ".join(p.msg for p in parsed)


@pytest.mark.parametrize("freq", ["MINUTELY", "SECONDLY"])
def test_sub_hourly_frequencies_are_refused(freq: str) -> None:
    assert "sub-hourly" in refusal(f"FREQ={freq};BYMINUTE=0")


def test_hourly_runs_closer_than_an_hour_are_refused() -> None:
    fields = ScheduleFields(
        rule="FREQ=HOURLY;BYMINUTE=0,30",
        sirens=["s1"],
        programme=[Step(kind=SirenKind.SILENT_TEST)],
    )
    plan, problems = check(
        "x", fields, builtin_signals(), now=datetime(2026, 5, 1, tzinfo=SHANGHAI)
    )
    assert plan is None
    assert problems[0].loc == ["rule"] and "at least an hour apart" in problems[0].msg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FREQ=WEEKLY;BYHOUR=9;BYMINUTE=0", "add BYDAY=MO"),
        ("FREQ=WEEKLY;BYDAY=MO;BYMINUTE=0", "add BYHOUR=9"),
        ("FREQ=WEEKLY;BYDAY=MO;BYHOUR=9", "add BYMINUTE=0"),
        ("FREQ=YEARLY;BYMONTH=9;BYHOUR=10;BYMINUTE=0", "BYMONTHDAY=18"),
        ("FREQ=MONTHLY;BYHOUR=10;BYMINUTE=0", "BYMONTHDAY=1"),
        (f"{MONDAY_9};BYSECOND=30", "BYSECOND"),
        (f"{MONDAY_9};COUNT=3;UNTIL=20301231T160000Z", "COUNT or UNTIL, not both"),
        (f"{MONDAY_9};UNTIL=20301231T160000", "UTC"),
        (f"{MONDAY_9};COUNT=0", "COUNT=0"),
        (f"{MONDAY_9};DTSTART=20260101T000000", "timezone"),
        (f"{MONDAY_9};FOO=1", "not an RRULE part"),
        ("BYDAY=MO;BYHOUR=9;BYMINUTE=0", "FREQ is missing"),
        ("FREQ=WEEKLY;BYDAY=XX;BYHOUR=9;BYMINUTE=0", "BYDAY"),
        ("FREQ=DAILY;BYHOUR=25;BYMINUTE=0", "hour must be in 0..23"),
    ],
)
def test_rules_are_refused_with_what_to_do(text: str, expected: str) -> None:
    assert expected in refusal(text)


def test_rrule_prefix_and_lower_case_are_accepted() -> None:
    assert rule("RRULE:freq=weekly;byday=mo;byhour=9;byminute=0").text == MONDAY_9


def test_time_zone_names_are_checked() -> None:
    assert isinstance(zone_of("Europe/Berlin"), ZoneInfo)
    assert "unknown time zone" in str(zone_of("Mars/Olympus_Mons"))
    assert "not an IANA" in str(zone_of("../../etc/passwd"))


def test_monday_nine_in_shanghai() -> None:
    sunday = datetime(2026, 11, 29, 12, 0, tzinfo=SHANGHAI)
    runs = rule(MONDAY_9).after(sunday, 3)
    assert [r.isoformat() for r in runs] == [
        "2026-11-30T09:00:00+08:00",
        "2026-12-07T09:00:00+08:00",
        "2026-12-14T09:00:00+08:00",
    ]


def test_monday_nine_in_berlin_stays_nine_across_both_dst_changes() -> None:
    recurrence = rule(MONDAY_9, BERLIN)
    spring = recurrence.after(datetime(2026, 3, 20, tzinfo=BERLIN), 2)
    assert [r.isoformat() for r in spring] == [
        "2026-03-23T09:00:00+01:00",
        "2026-03-30T09:00:00+02:00",  # clocks went forward on Sunday 29 March
    ]
    assert [r.astimezone(ZoneInfo("UTC")).hour for r in spring] == [8, 7]
    autumn = recurrence.after(datetime(2026, 10, 20, tzinfo=BERLIN), 1)
    assert autumn[0].isoformat() == "2026-10-26T09:00:00+01:00"  # back on 25 October


def test_a_time_in_the_spring_gap_runs_just_after_it() -> None:
    daily = rule("FREQ=DAILY;BYHOUR=2;BYMINUTE=30", BERLIN)
    runs = daily.after(datetime(2026, 3, 28, 12, tzinfo=BERLIN), 2)
    assert [r.isoformat() for r in runs] == [
        "2026-03-29T03:30:00+02:00",  # 02:30 does not exist that night
        "2026-03-30T02:30:00+02:00",
    ]


def test_count_counts_from_the_first_day_and_then_the_rule_is_done() -> None:
    recurrence = rule(f"{MONDAY_9};COUNT=2", starts=date(2026, 11, 1))
    assert [r.day for r in recurrence.after(datetime(2026, 11, 1, tzinfo=SHANGHAI), 5)] == [2, 9]
    fields = ScheduleFields(
        rule=f"{MONDAY_9};COUNT=2",
        starts=date(2026, 11, 1),
        sirens=["s1"],
        programme=[Step(kind=SirenKind.SILENT_TEST)],
    )
    _, problems = check("x", fields, builtin_signals(), now=datetime(2026, 11, 20, tzinfo=SHANGHAI))
    assert "no run after now" in problems[0].msg


def test_interval_takes_its_phase_from_the_first_day() -> None:
    fortnightly = rule(
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;BYHOUR=9;BYMINUTE=0", starts=date(2026, 11, 2)
    )
    runs = fortnightly.after(datetime(2026, 11, 3, tzinfo=SHANGHAI), 2)
    assert [r.date().isoformat() for r in runs] == ["2026-11-16", "2026-11-30"]


def test_until_as_a_local_date_includes_that_day() -> None:
    recurrence = rule(f"{MONDAY_9};UNTIL=20261207")
    runs = recurrence.after(datetime(2026, 11, 29, tzinfo=SHANGHAI), 5)
    assert [r.day for r in runs] == [30, 7]


def test_a_rule_that_never_matches_is_refused_quickly() -> None:
    started = time.monotonic()
    assert "no run within ten years" in refusal("FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=31;BYMINUTE=0")
    assert time.monotonic() - started < 2.0
