"""Sirens: inventory, signals, activations with two-person approval, outcomes and reports.

The service object (``SirenService``) lives in the app's lifespan state under ``sirens``;
other services call its ``request`` and ``resolve``.
"""

from control.sirens.activations import KIND_PERMISSION, ActivationState
from control.sirens.errors import (
    Conflict,
    ImportRejected,
    InvalidInput,
    NotAllowed,
    NotFound,
    SirenError,
    SirensUnavailable,
    UnknownTarget,
)
from control.sirens.models import ActivationPublic, SirenPublic
from control.sirens.outcomes import TargetState
from control.sirens.reports import ActivationReport
from control.sirens.service import SirenService

__all__ = [
    "KIND_PERMISSION",
    "ActivationPublic",
    "ActivationReport",
    "ActivationState",
    "Conflict",
    "ImportRejected",
    "InvalidInput",
    "NotAllowed",
    "NotFound",
    "SirenError",
    "SirenPublic",
    "SirenService",
    "SirensUnavailable",
    "TargetState",
    "UnknownTarget",
]
