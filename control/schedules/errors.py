"""Errors of the schedules package.

ScheduleError
├── ScheduleInvalid      the schedule would not run as written (problems say where, why)
├── ScheduleNotFound     no schedule of that name
├── ScheduleExists       the name is taken
├── ScheduleConflict     changed by someone else between our read and our write
├── ScheduleForbidden    the caller's role may not author this programme
└── SchedulesUnavailable the service is not running, or the audit trail refused the change
"""

from __future__ import annotations

from collections.abc import Sequence

from control.schedules.spec import Problem

__all__ = [
    "ScheduleConflict",
    "ScheduleError",
    "ScheduleExists",
    "ScheduleForbidden",
    "ScheduleInvalid",
    "ScheduleNotFound",
    "SchedulesUnavailable",
]


class ScheduleError(Exception):
    pass


class ScheduleInvalid(ScheduleError, ValueError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(p.text() for p in self.problems))


class ScheduleNotFound(ScheduleError, LookupError):
    pass


class ScheduleExists(ScheduleError):
    pass


class ScheduleConflict(ScheduleError):
    pass


class ScheduleForbidden(ScheduleError, PermissionError):
    pass


class SchedulesUnavailable(ScheduleError):
    pass
