"""Exercises (演习): scenario, participating areas and timeline; injected situations; each
area's response timed; the after-action report. The exercise's id is its label."""

from control.exercises.errors import (
    Conflict,
    ExerciseError,
    InvalidInput,
    LabelRefused,
    NotAllowed,
    NotFound,
    Unavailable,
)
from control.exercises.labels import check_label
from control.exercises.library import SituationKind, library
from control.exercises.models import (
    AfterActionReport,
    AreaSummary,
    ExerciseCreate,
    ExercisePublic,
    InjectRequest,
    Note,
    SituationPublic,
    SituationTiming,
    Stage,
)
from control.exercises.report import build_report, report_csv, report_html
from control.exercises.service import ExerciseService, visible_to

__all__ = [
    "AfterActionReport",
    "AreaSummary",
    "Conflict",
    "ExerciseCreate",
    "ExerciseError",
    "ExercisePublic",
    "ExerciseService",
    "InjectRequest",
    "InvalidInput",
    "LabelRefused",
    "NotAllowed",
    "NotFound",
    "Note",
    "SituationKind",
    "SituationPublic",
    "SituationTiming",
    "Stage",
    "Unavailable",
    "build_report",
    "check_label",
    "library",
    "report_csv",
    "report_html",
    "visible_to",
]
