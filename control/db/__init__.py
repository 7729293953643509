"""The control service's SQL database: models, engine and migrations."""

from control.db.area_models import AreaTreeRecord
from control.db.cap_models import CapMessage
from control.db.conversion_models import (
    ConversionEvent,
    ConversionOrder,
    ConversionStep,
    ConversionTarget,
    SitePostureRecord,
)
from control.db.database import Database, async_url
from control.db.exercise_models import Exercise, ExerciseAlert, ExerciseSituation
from control.db.maintenance_models import MaintenanceRecord, WorkOrder
from control.db.models import (
    ApiToken,
    AuditEntry,
    Base,
    CommandEvent,
    CommandRecord,
    SirenActivation,
    SirenActivationEvent,
    SirenGroup,
    SirenPost,
    SirenTarget,
    User,
)
from control.db.schedule_models import ScheduleRecord, ScheduleRun

__all__ = [
    "ApiToken",
    "AreaTreeRecord",
    "AuditEntry",
    "Base",
    "CapMessage",
    "CommandEvent",
    "CommandRecord",
    "ConversionEvent",
    "ConversionOrder",
    "ConversionStep",
    "ConversionTarget",
    "Database",
    "Exercise",
    "ExerciseAlert",
    "ExerciseSituation",
    "MaintenanceRecord",
    "ScheduleRecord",
    "ScheduleRun",
    "SirenActivation",
    "SirenActivationEvent",
    "SirenGroup",
    "SirenPost",
    "SirenTarget",
    "SitePostureRecord",
    "User",
    "WorkOrder",
    "async_url",
]
