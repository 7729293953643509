"""Siren schedules: recurring silent tests and test-day programmes, previewed before they are
saved, audited when changed, and fired once each by whichever control replica claims them."""

from control.schedules.clock import Clock, ManualClock, SystemClock
from control.schedules.errors import (
    ScheduleConflict,
    ScheduleError,
    ScheduleExists,
    ScheduleForbidden,
    ScheduleInvalid,
    ScheduleNotFound,
    SchedulesUnavailable,
)
from control.schedules.ports import (
    ActivationStarter,
    ProgrammeListener,
    ProgrammeRun,
    StartedActivation,
)
from control.schedules.service import ScheduleService
from control.schedules.spec import Problem, ScheduleCreate, ScheduleFields, Step

__all__ = [
    "ActivationStarter",
    "Clock",
    "ManualClock",
    "Problem",
    "ProgrammeListener",
    "ProgrammeRun",
    "ScheduleConflict",
    "ScheduleCreate",
    "ScheduleError",
    "ScheduleExists",
    "ScheduleFields",
    "ScheduleForbidden",
    "ScheduleInvalid",
    "ScheduleNotFound",
    "ScheduleService",
    "SchedulesUnavailable",
    "StartedActivation",
    "Step",
    "SystemClock",
]
