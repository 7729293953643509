"""What a schedule says, as people write it: the shape of the API body and of the stored row.

Only the shape is checked here (types, slugs, lengths). Whether the schedule would run as
written (a real time zone, an RFC 5545 rule no more often than hourly, known signals, steps
that do not overlap, never a live alert) is ``plan.check``'s job, so that preview can return
every problem at once instead of the first one.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shelterwatch.contract import SLUG_PATTERN, SirenKind

__all__ = [
    "DEFAULT_TIMEZONE",
    "MAX_STEPS",
    "Problem",
    "ScheduleCreate",
    "ScheduleFields",
    "Slug",
    "Step",
]

DEFAULT_TIMEZONE = "Asia/Shanghai"
MAX_STEPS = 32
# Offsets and gaps within one run: a programme is a morning's or a day's work, never more.
# Strict: JSON true is not 1 second.
_OFFSET = Annotated[float, Field(ge=0, le=86400, allow_inf_nan=False, strict=True)]

Slug = Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)]
# "Not only spaces", spelled so that every regex engine agrees (see control/api/alerts.py).
# Not blank, and no NUL (PostgreSQL text cannot hold it).
_Text = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*[^\x00 \t\n\r\f\v][^\x00]*$")
]


class Step(BaseModel):
    """One activation of a run's programme.

    ``at_s`` places it that many seconds after the run's start; ``gap_s`` that many seconds
    after the previous step's signal ends (how test-day notices state it: "5 minutes after").
    Give one or neither: neither means right after the previous step (or at the start).
    """

    model_config = ConfigDict(extra="forbid")

    kind: SirenKind
    # A catalogue signal (GET /api/v1/signals): required for audible tests and drills,
    # absent for a silent test.
    signal: Slug | None = None
    at_s: _OFFSET | None = None
    gap_s: _OFFSET | None = None


class ScheduleFields(BaseModel):
    """Everything about a schedule but its name (the body of an update)."""

    model_config = ConfigDict(extra="forbid")

    # Defaults to the template's title, else the name.
    title: _Text | None = None
    enabled: bool = True
    # IANA time zone the rule's wall-clock times are read in.
    timezone: Annotated[str, Field(min_length=1, max_length=64)] = DEFAULT_TIMEZONE
    # RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0. Defaults to the
    # template's rule.
    rule: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    # The local day the rule counts from (its DTSTART at 00:00): it sets the phase of
    # INTERVAL and where COUNT starts. Defaults to the day the schedule is created.
    starts: Annotated[date, Field(strict=True)] | None = None
    sirens: Annotated[list[Slug], Field(max_length=1000)] = Field(default_factory=list)
    groups: Annotated[list[Slug], Field(max_length=100)] = Field(default_factory=list)
    programme: Annotated[list[Step], Field(max_length=MAX_STEPS)] = Field(default_factory=list)
    # A built-in programme (GET /api/v1/schedule-templates), instead of ``programme``.
    template: Slug | None = None


class ScheduleCreate(ScheduleFields):
    """A new schedule (also the body of a preview)."""

    name: Slug


class Problem(BaseModel):
    """Why a schedule would not run as written: where (``loc``, a path into the body) and what
    to do about it (``msg``)."""

    loc: list[str | int]
    msg: str

    def text(self) -> str:
        where = ".".join(str(part) for part in self.loc)
        return f"{where}: {self.msg}" if where else self.msg
