"""Programmes in time: the test-day templates' step times, gaps after a signal's end, and the
steps a schedule refuses (never a live alert)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from control.auth import Permission
from control.schedules.plan import Plan, check, permission_for
from control.schedules.programme import builtin_templates, time_programme
from control.schedules.spec import ScheduleFields, Step
from shelterwatch.contract import SirenKind
from shelterwatch.signals import builtin_signals

SHANGHAI = ZoneInfo("Asia/Shanghai")
# A week before the 2026 test day.
NOW = datetime(2026, 9, 11, 12, 0, tzinfo=SHANGHAI)


def plan_of(**fields: object) -> Plan:
    values: dict[str, object] = {"sirens": ["s1"]} | fields
    plan, problems = check("t", ScheduleFields.model_validate(values), builtin_signals(), now=NOW)
    assert plan is not None, problems
    return plan


def step_times(plan: Plan) -> list[tuple[str, str, str | None]]:
    run = plan.runs_after(NOW, 1)[0]
    return [
        (s.start.astimezone(SHANGHAI).strftime("%H:%M:%S"), s.end.strftime("%H:%M"), s.step.signal)
        for s in plan.layout(run)
    ]


def test_template_a_on_18_september_sounds_at_10_00_10_08_10_16() -> None:
    plan = plan_of(template="test_day_a")
    run = plan.runs_after(NOW, 1)[0]
    assert run.isoformat() == "2026-09-18T10:00:00+08:00"
    layout = plan.layout(run)
    assert [(s.start.strftime("%H:%M:%S"), s.step.signal) for s in layout] == [
        ("10:00:00", "prealert"),
        ("10:08:00", "air_raid"),
        ("10:16:00", "all_clear"),
    ]
    # Each national signal occupies 3 minutes; the gap counts from its end (10:03 → 10:08).
    assert [s.step.length_s for s in layout] == [180, 180, 180]
    assert [s.step.sounding_s for s in layout] == [156, 174, 180]
    assert plan.length.total_seconds() == 19 * 60
    assert layout[0].step.title == "预先警报 Pre-alert"


def test_template_b_has_3_minute_gaps() -> None:
    assert [t[0] for t in step_times(plan_of(template="test_day_b"))] == [
        "12:00:00",
        "12:06:00",
        "12:12:00",
    ]


def test_template_c_sounds_two_cycles_with_3_minute_gaps_and_lasts_31_minutes() -> None:
    plan = plan_of(template="test_day_c")
    assert step_times(plan) == [
        ("10:00:00", "10:03", "prealert"),
        ("10:06:00", "10:09", "prealert"),
        ("10:14:00", "10:17", "air_raid"),
        ("10:20:00", "10:23", "air_raid"),
        ("10:28:00", "10:31", "all_clear"),
    ]
    assert plan.length.total_seconds() == 31 * 60


def test_every_template_is_a_valid_schedule() -> None:
    for name in builtin_templates():
        assert plan_of(template=name).steps, name


def test_a_rule_given_with_a_template_replaces_its_day() -> None:
    plan = plan_of(
        template="test_day_a", rule="FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=13;BYHOUR=10;BYMINUTE=0"
    )
    assert plan.runs_after(NOW, 1)[0].isoformat() == "2026-12-13T10:00:00+08:00"


def test_at_s_places_a_step_from_the_run_start_and_gap_s_from_the_previous_end() -> None:
    steps = [
        Step(kind=SirenKind.SILENT_TEST),
        Step(kind=SirenKind.AUDIBLE_TEST, signal="test_tone", at_s=600),
        Step(kind=SirenKind.DRILL, signal="prealert", gap_s=60),
    ]
    timed, problems = time_programme(steps, builtin_signals())
    assert not problems
    assert [(t.offset_s, t.length_s) for t in timed] == [(0, 0), (600, 10), (670, 180)]


@pytest.mark.parametrize(
    ("step", "loc", "expected"),
    [
        (Step(kind=SirenKind.LIVE, signal="air_raid"), "kind", "a live alert is never scheduled"),
        (Step(kind=SirenKind.SILENT_TEST, signal="test_tone"), "signal", "makes no sound"),
        (Step(kind=SirenKind.AUDIBLE_TEST), "signal", "name one of"),
        (Step(kind=SirenKind.DRILL, signal="whistle"), "signal", "unknown signal 'whistle'"),
    ],
)
def test_steps_are_refused_with_a_clear_message(step: Step, loc: str, expected: str) -> None:
    _, problems = time_programme([step], builtin_signals())
    assert [(p.loc, expected in p.msg) for p in problems] == [(["programme", 0, loc], True)]


def test_live_is_refused_in_a_whole_schedule_too() -> None:
    fields = ScheduleFields(
        rule="FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0",
        sirens=["s1"],
        programme=[Step(kind=SirenKind.LIVE, signal="air_raid")],
    )
    plan, problems = check("t", fields, builtin_signals(), now=NOW)
    assert plan is None
    assert "a live alert is never scheduled" in problems[0].msg


def test_overlapping_steps_are_refused() -> None:
    steps = [
        Step(kind=SirenKind.AUDIBLE_TEST, signal="prealert"),
        Step(kind=SirenKind.AUDIBLE_TEST, signal="air_raid", at_s=120),
    ]
    _, problems = time_programme(steps, builtin_signals())
    assert problems[0].loc == ["programme", 1, "at_s"]
    assert "still running until +180 s" in problems[0].msg


def test_at_and_gap_together_are_refused() -> None:
    _, problems = time_programme(
        [Step(kind=SirenKind.SILENT_TEST, at_s=0, gap_s=0)], builtin_signals()
    )
    assert "not both" in problems[0].msg


def test_a_programme_longer_than_the_time_between_runs_is_refused() -> None:
    fields = ScheduleFields(
        rule="FREQ=HOURLY;BYMINUTE=0",
        sirens=["s1"],
        template="test_day_d",  # lasts 63 minutes
    )
    _, problems = check("t", fields, builtin_signals(), now=NOW)
    assert "space the runs or shorten the programme" in problems[0].msg


def test_permission_follows_what_the_public_hears() -> None:
    assert permission_for([SirenKind.SILENT_TEST]) is Permission.COMMANDS_OPERATE
    assert permission_for([SirenKind.SILENT_TEST, SirenKind.AUDIBLE_TEST]) is (
        Permission.COMMANDS_APPROVE
    )
    assert permission_for([SirenKind.DRILL]) is Permission.COMMANDS_APPROVE


def test_targets_and_a_rule_are_required() -> None:
    fields = ScheduleFields(programme=[Step(kind=SirenKind.SILENT_TEST)])
    _, problems = check("t", fields, builtin_signals(), now=NOW)
    assert {tuple(p.loc) for p in problems} == {("sirens",), ("rule",)}
