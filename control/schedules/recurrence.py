"""Recurrence rules (RFC 5545 RRULE) read in a schedule's time zone: checking and expanding.

A rule says *when* runs start, in wall-clock time: "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"
is 09:00 local every Monday, in summer and in winter. python-dateutil expands it; this module
adds what a siren schedule needs on top:

- never more often than hourly (MINUTELY and SECONDLY are refused, and so are rules whose
  runs come closer than an hour, checked in ``plan``);
- the time of day spelled out (BYHOUR, BYMINUTE) and the day too for weekly, monthly and
  yearly rules, so that nothing silently comes from the day the schedule was saved;
- COUNT or UNTIL (not both, as RFC 5545 says), with UNTIL in UTC;
- every search bounded by a horizon, so a rule that never matches (30 February) answers
  "no run" in milliseconds instead of scanning to the year 9999.

A local time that does not exist (02:30 on the night clocks go forward) runs at the same
instant moved past the gap (03:30); a time that exists twice (clocks go back) runs at the
first.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

from control.schedules.spec import Problem

__all__ = [
    "HORIZON",
    "MAX_COUNT",
    "Recurrence",
    "parse_rule",
    "zone_of",
]

# How far ahead a rule is searched: ten years covers five runs of a yearly test day.
HORIZON = timedelta(days=3660)
MAX_COUNT = 10_000
_ALLOWED = {
    "FREQ",
    "INTERVAL",
    "COUNT",
    "UNTIL",
    "BYSECOND",
    "BYMINUTE",
    "BYHOUR",
    "BYDAY",
    "BYMONTHDAY",
    "BYYEARDAY",
    "BYWEEKNO",
    "BYMONTH",
    "BYSETPOS",
    "WKST",
}
_FREQS = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY")
_UNTIL_UTC = re.compile(r"^\d{8}T\d{6}Z$")
_UNTIL_DATE = re.compile(r"^\d{8}$")
_LOC = ["rule"]
_PROBE_BUDGET_S = 0.5


def zone_of(name: str) -> ZoneInfo | str:
    """The IANA zone, or why ``name`` is not one."""
    # ZoneInfo also opens file paths and "localtime"-style keys; an IANA name is plain words.
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*", name):
        return f"{name!r} is not an IANA time zone name (e.g. Asia/Shanghai, Europe/Berlin)"
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        return f"unknown time zone {name!r}: use an IANA name such as Asia/Shanghai"


@dataclass(frozen=True)
class Recurrence:
    """A checked rule, ready to expand. Build it with ``parse_rule``."""

    text: str
    zone: ZoneInfo
    anchor: datetime  # DTSTART: local midnight of the schedule's first day
    freq: str
    interval: int
    count: int | None
    until: datetime | None
    body: str  # the rule without COUNT and UNTIL, which are applied here

    def occurrences(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Run starts with ``start <= t <= end``, in order, in the schedule's zone."""
        if self.until is not None:
            end = min(end, self.until)
        if end < start:
            return
        dtstart = self.anchor
        if self.count is None and self.interval == 1:
            # With INTERVAL 1 and every field of the time spelled out, a later DTSTART gives
            # the same runs after it: start a day early instead of iterating from the anchor.
            local = start.astimezone(self.zone) - timedelta(days=1)
            dtstart = max(dtstart, datetime(local.year, local.month, local.day, tzinfo=self.zone))
        bounded = _build(self.body, dtstart, end)
        for index, raw in enumerate(bounded):
            if self.count is not None and index >= self.count:
                return
            moment = _existing(raw, self.zone)
            if moment < start:
                continue
            if moment > end:
                return
            yield moment

    def after(self, moment: datetime, n: int) -> list[datetime]:
        """The next ``n`` run starts strictly after ``moment`` (fewer near the horizon's end)."""
        start = moment + timedelta(microseconds=1)
        return list(islice(self.occurrences(start, moment + HORIZON), n))


def parse_rule(
    text: str, zone: ZoneInfo, starts: date, *, probe: bool = True
) -> Recurrence | list[Problem]:
    """Check ``text`` and build its Recurrence, or say everything wrong with it. ``probe``
    also checks that it ever runs (off for rules already saved, which were checked then)."""
    raw = text.strip()
    if raw.upper().startswith("RRULE:"):
        raw = raw[len("RRULE:") :]
    parts: dict[str, str] = {}
    problems: list[Problem] = []
    for item in filter(None, (p.strip() for p in raw.split(";"))):
        key, sep, value = item.partition("=")
        key = key.strip().upper()
        if not sep or not value.strip():
            problems.append(_p(f"{item!r} is not KEY=VALUE"))
        elif key in ("DTSTART", "TZID"):
            problems.append(
                _p(f"{key} does not go in the rule: give `timezone` and `starts` instead")
            )
        elif key not in _ALLOWED:
            problems.append(_p(f"{key} is not an RRULE part (RFC 5545 §3.3.10)"))
        elif key in parts:
            problems.append(_p(f"{key} is given twice"))
        else:
            parts[key] = value.strip().upper()
    if problems:
        return problems
    problems = _shape_problems(parts)
    if problems:
        return problems
    count = int(parts["COUNT"]) if "COUNT" in parts else None
    interval = int(parts.get("INTERVAL", "1"))
    until: datetime | None = None
    if "UNTIL" in parts:
        value = parts["UNTIL"]
        try:
            if _UNTIL_UTC.match(value):
                until = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            elif _UNTIL_DATE.match(value):
                # A date: the end of that local day, as people read "until 31 December".
                day = datetime.strptime(value, "%Y%m%d")
                until = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=zone)
            else:
                raise ValueError(value)
        except ValueError:
            return [_p(f"UNTIL={value}: give a UTC time (20301231T160000Z) or a date (20301231)")]
    body = ";".join(f"{k}={v}" for k, v in parts.items() if k not in ("COUNT", "UNTIL"))
    anchor = datetime(starts.year, starts.month, starts.day, tzinfo=zone)
    try:
        # Built once here so that a bad value (BYHOUR=25, BYDAY=XX) is reported now.
        _build(body, anchor, anchor + timedelta(days=1))
    except (ValueError, TypeError, OverflowError) as exc:
        return [_p(f"not a valid RRULE: {exc}")]
    if probe and not _matches_soon(body, anchor):
        return [
            _p(
                "the rule finds no run within ten years of its first day: check that the "
                "days exist (BYMONTH with BYMONTHDAY, BYSETPOS) and INTERVAL with BYHOUR"
            )
        ]
    return Recurrence(
        text=";".join(f"{k}={v}" for k, v in parts.items()),
        zone=zone,
        anchor=anchor,
        freq=parts["FREQ"],
        interval=interval,
        count=count,
        until=until,
        body=body,
    )


def _shape_problems(parts: dict[str, str]) -> list[Problem]:
    freq = parts.get("FREQ")
    if freq is None:
        return [_p("FREQ is missing, e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0")]
    if freq in ("MINUTELY", "SECONDLY"):
        return [
            _p(
                f"FREQ={freq}: sub-hourly rules are refused (sirens are tested at most hourly); "
                "use FREQ=HOURLY or a longer frequency"
            )
        ]
    if freq not in _FREQS:
        return [_p(f"FREQ={freq} is not one of {', '.join(_FREQS)}")]
    problems: list[Problem] = []
    for key, low, high in (("INTERVAL", 1, 1000), ("COUNT", 1, MAX_COUNT)):
        if key in parts and not (parts[key].isdigit() and low <= int(parts[key]) <= high):
            problems.append(_p(f"{key}={parts[key]} must be a whole number from {low} to {high}"))
    if "COUNT" in parts and "UNTIL" in parts:
        problems.append(_p("give COUNT or UNTIL, not both (RFC 5545)"))
    if parts.get("BYSECOND", "0") != "0":
        problems.append(_p("BYSECOND: runs start on the minute; leave BYSECOND out"))
    # Every part of the time spelled out: what is left out would come from DTSTART, which is
    # the day the schedule happened to be saved.
    if "BYMINUTE" not in parts:
        problems.append(_p("say the minute: add BYMINUTE=0 (or the minute you want)"))
    if freq != "HOURLY" and "BYHOUR" not in parts:
        problems.append(_p("say the hour: add BYHOUR=9 (or the hour you want, 0-23)"))
    if freq == "WEEKLY" and "BYDAY" not in parts:
        problems.append(_p("say the weekday: add BYDAY=MO (MO, TU, WE, TH, FR, SA, SU)"))
    if freq == "MONTHLY" and not ({"BYMONTHDAY", "BYDAY"} & parts.keys()):
        problems.append(_p("say the day: add BYMONTHDAY=1 or BYDAY=1MO (first Monday)"))
    if freq == "YEARLY" and not ({"BYMONTHDAY", "BYDAY", "BYYEARDAY"} & parts.keys()):
        problems.append(_p("say the day: add BYMONTH=9;BYMONTHDAY=18 (18 September)"))
    return problems


def _build(body: str, dtstart: datetime, until: datetime) -> rrule:
    stop = until.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    built = rrulestr(f"{body};UNTIL={stop}", dtstart=dtstart)
    assert isinstance(built, rrule)  # one RRULE line without forceset is never a set
    return built


def _matches_soon(body: str, anchor: datetime) -> bool:
    # dateutil's UNTIL stops an expansion only at a match past it: a rule that never matches
    # (30 February) is scanned period by period to the year 9999, seconds of CPU. So the
    # first search runs in a thread with a budget; past the budget the rule counts as never
    # matching (the thread ends by itself at the year 9999).
    found: list[bool] = []

    def search() -> None:
        found.append(next(iter(_build(body, anchor, anchor + HORIZON)), None) is not None)

    thread = threading.Thread(target=search, name="rrule-probe", daemon=True)
    thread.start()
    thread.join(_PROBE_BUDGET_S)
    return bool(found and found[0])


def _existing(moment: datetime, zone: ZoneInfo) -> datetime:
    # A wall-clock time in a DST gap does not exist; through the timestamp it becomes the
    # instant it names, shown in the offset that holds then (02:30 → 03:30 in spring).
    return datetime.fromtimestamp(moment.timestamp(), zone)


def _p(msg: str) -> Problem:
    return Problem(loc=list(_LOC), msg=msg)
