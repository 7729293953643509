"""Checking a schedule as a whole and laying out its runs: what preview shows and what create
and update refuse, from one function so the two can never disagree. Pure (no IO): resolving
the targets against the siren inventory is the service's part.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from control.auth import Permission
from control.schedules.programme import Template, TimedStep, builtin_templates, time_programme
from control.schedules.recurrence import Recurrence, parse_rule, zone_of
from control.schedules.spec import Problem, ScheduleFields, Step
from shelterwatch.contract import SirenKind
from shelterwatch.signals import SignalDefinition

__all__ = [
    "MIN_SPACING",
    "Plan",
    "RunStep",
    "check",
    "effective_programme",
    "permission_for",
]

# Runs closer than this are refused: sirens are not tested more often than hourly.
MIN_SPACING = timedelta(hours=1)
# How many upcoming runs the spacing check looks at.
_SPACING_SAMPLE = 50
# How far back a schedule's first day may lie (it only sets the phase of INTERVAL and COUNT).
_STARTS_BACK = timedelta(days=366)
_STARTS_AHEAD = timedelta(days=3660)


@dataclass(frozen=True)
class RunStep:
    step: TimedStep
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Plan:
    """A schedule that would run as written."""

    name: str
    title: str
    enabled: bool
    timezone: str
    rule: str
    starts: date
    sirens: list[str]
    groups: list[str]
    programme: list[Step]
    template: str | None
    recurrence: Recurrence
    steps: list[TimedStep]

    @property
    def zone(self) -> ZoneInfo:
        return self.recurrence.zone

    @property
    def length(self) -> timedelta:
        return timedelta(seconds=max((s.end_s for s in self.steps), default=0.0))

    @property
    def permission(self) -> Permission:
        return permission_for(s.kind for s in self.programme)

    def runs_after(self, moment: datetime, n: int) -> list[datetime]:
        return self.recurrence.after(moment, n)

    def layout(self, run: datetime) -> list[RunStep]:
        return [
            RunStep(
                step=s,
                start=run + timedelta(seconds=s.offset_s),
                end=run + timedelta(seconds=s.end_s),
            )
            for s in self.steps
        ]


def permission_for(kinds: Iterable[SirenKind]) -> Permission:
    """A programme of silent tests only is the duty officer's; anything the public hears
    (audible tests, drills) needs a commander."""
    listed = list(kinds)
    # An empty programme is refused anyway; it asks for the higher role meanwhile.
    if listed and all(kind is SirenKind.SILENT_TEST for kind in listed):
        return Permission.COMMANDS_OPERATE
    return Permission.COMMANDS_APPROVE


def effective_programme(fields: ScheduleFields) -> list[Step]:
    """The steps the schedule would run: its own, or its template's."""
    if fields.programme or fields.template is None:
        return list(fields.programme)
    template = builtin_templates().get(fields.template)
    return list(template.programme) if template else []


def check(
    name: str,
    fields: ScheduleFields,
    signals: Mapping[str, SignalDefinition],
    *,
    now: datetime,
    require_future: bool = True,
) -> tuple[Plan | None, list[Problem]]:
    """The schedule's Plan, or every problem with it. ``require_future`` is off for stored
    schedules the runner expands (a rule that ran out is simply done)."""
    problems: list[Problem] = []
    template: Template | None = None
    if fields.template is not None:
        template = builtin_templates().get(fields.template)
        if template is None:
            known = ", ".join(sorted(builtin_templates()))
            problems.append(
                Problem(loc=["template"], msg=f"no template {fields.template!r}: {known}")
            )
        elif fields.programme:
            problems.append(
                Problem(loc=["programme"], msg="give a template or a programme, not both")
            )
    programme = effective_programme(fields)
    rule_text = fields.rule or (template.rule if template else None)
    title = fields.title or (template.title if template else name)

    zone = zone_of(fields.timezone)
    if isinstance(zone, str):
        problems.append(Problem(loc=["timezone"], msg=zone))
    if not fields.sirens and not fields.groups:
        problems.append(
            Problem(loc=["sirens"], msg="name at least one siren or group (sirens, groups)")
        )
    if fields.template is None or template is not None:
        steps, step_problems = time_programme(programme, signals)
        problems += step_problems
    else:
        steps = []

    recurrence: Recurrence | None = None
    starts = fields.starts
    if isinstance(zone, ZoneInfo):
        today = now.astimezone(zone).date()
        if starts is None:
            starts = today
        elif require_future and not (today - _STARTS_BACK <= starts <= today + _STARTS_AHEAD):
            problems.append(
                Problem(
                    loc=["starts"],
                    msg=(
                        f"{starts.isoformat()} is too far from today: give a day between "
                        f"{(today - _STARTS_BACK).isoformat()} and "
                        f"{(today + _STARTS_AHEAD).isoformat()}"
                    ),
                )
            )
            starts = None
        if rule_text is None:
            problems.append(
                Problem(
                    loc=["rule"],
                    msg="rule is missing, e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0",
                )
            )
        elif starts is not None:
            parsed = parse_rule(rule_text, zone, starts, probe=require_future)
            if isinstance(parsed, list):
                problems += parsed
            else:
                recurrence = parsed
    if recurrence is not None and require_future:
        length = timedelta(seconds=max((s.end_s for s in steps), default=0.0))
        problems += _timing_problems(recurrence, length, now)
    if problems or recurrence is None or starts is None:
        return None, problems
    return (
        Plan(
            name=name,
            title=title,
            enabled=fields.enabled,
            timezone=fields.timezone,
            rule=recurrence.text,
            starts=starts,
            sirens=list(dict.fromkeys(fields.sirens)),
            groups=list(dict.fromkeys(fields.groups)),
            programme=programme,
            template=fields.template,
            recurrence=recurrence,
            steps=steps,
        ),
        [],
    )


def _timing_problems(recurrence: Recurrence, length: timedelta, now: datetime) -> list[Problem]:
    upcoming = recurrence.after(now, _SPACING_SAMPLE)
    if not upcoming:
        return [
            Problem(
                loc=["rule"],
                msg=(
                    "the rule has no run after now (within ten years): COUNT or UNTIL has "
                    "passed, or the day never occurs"
                ),
            )
        ]
    for first, second in pairwise(upcoming):
        gap = second - first
        if gap < MIN_SPACING:
            return [
                Problem(
                    loc=["rule"],
                    msg=(
                        f"runs at {first.isoformat()} and {second.isoformat()} are "
                        f"{_minutes(gap)} apart: runs must be at least an hour apart "
                        "(sub-hourly schedules are refused)"
                    ),
                )
            ]
        if gap <= length:
            return [
                Problem(
                    loc=["rule"],
                    msg=(
                        f"the programme lasts {_minutes(length)}, but runs at "
                        f"{first.isoformat()} and {second.isoformat()} are only "
                        f"{_minutes(gap)} apart: space the runs or shorten the programme"
                    ),
                )
            ]
    return []


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:g} min"
