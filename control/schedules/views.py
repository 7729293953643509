"""Schedules as the API shows them: previews, schedules with their next runs, run reports."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel

from control.schedules.plan import Plan
from control.schedules.spec import Problem, Step

__all__ = [
    "Preview",
    "RunPreview",
    "RunReport",
    "ScheduleDetail",
    "SchedulePublic",
    "StepTime",
    "TargetCount",
    "TemplatePublic",
    "run_previews",
]


class StepTime(BaseModel):
    step: int
    kind: str
    signal: str | None
    title: str
    start: datetime
    end: datetime
    # The time the step occupies (a signal's full cycle) and the time it sounds.
    duration_s: float
    sounding_s: float


class RunPreview(BaseModel):
    start: datetime
    end: datetime
    steps: list[StepTime]


class TargetCount(BaseModel):
    sirens: list[str]
    groups: list[str]
    # How many siren posts the targets name today; None when they could not be checked.
    resolved: int | None
    detail: str = ""


class Preview(BaseModel):
    """What a schedule would do, before it is saved."""

    valid: bool
    problems: list[Problem]
    # The role this programme needs: duty_officer for silent tests only, else commander.
    needs_role: str | None
    targets: TargetCount
    programme_s: float | None
    runs: list[RunPreview]


class SchedulePublic(BaseModel):
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
    needs_role: str
    revision: int
    created_ts: int
    created_by: str
    updated_ts: int
    updated_by: str
    # The next run's start while enabled; None when disabled or the rule has run out.
    next_run: datetime | None
    # Problems of the stored schedule today (a signal gone from the catalogue): it does not
    # run until fixed.
    problems: list[Problem]


class ScheduleDetail(SchedulePublic):
    next_runs: list[RunPreview]


class RunReport(BaseModel):
    schedule: str
    run: datetime
    step: int
    due: datetime
    kind: str
    signal: str | None
    # claimed (being fired), fired, failed, missed
    state: str
    activation: str | None
    detail: str
    claimed_by: str
    updated_ts: int


class TemplatePublic(BaseModel):
    name: str
    title: str
    description: str
    rule: str
    programme: list[Step]
    # The first run of the template's programme, laid out from 00:00 (offsets only).
    programme_s: float


def run_previews(plan: Plan, starts: list[datetime]) -> list[RunPreview]:
    out = []
    for run in starts:
        steps = [
            StepTime(
                step=rs.step.number,
                kind=rs.step.kind.value,
                signal=rs.step.signal,
                title=rs.step.title,
                start=rs.start.astimezone(plan.zone),
                end=rs.end.astimezone(plan.zone),
                duration_s=rs.step.length_s,
                sounding_s=rs.step.sounding_s,
            )
            for rs in plan.layout(run)
        ]
        out.append(
            RunPreview(start=run, end=(run + plan.length).astimezone(plan.zone), steps=steps)
        )
    return out
