"""CAP 1.2 (OASIS Common Alerting Protocol) for siren activations (docs/cap.md).

``build_alert`` publishes a live alert, drill, audible test or test-day programme as a
schema-valid CAP message for the broadcast, SMS and TV channels that sound alongside the
sirens. ``parse_alert`` reads an upstream authority's CAP message into a ``CapRequest`` that
pre-fills an activation request, which still needs its approval. Pure functions: no DB, no IO
beyond reading the bundled schema.
"""

from control.cap.build import (
    PARAM_ACTIVATION,
    PARAM_EXERCISE,
    PARAM_KIND,
    PARAM_SIGNAL,
    PARAM_STEP,
    build_alert,
)
from control.cap.errors import CapError, CapRefused, CapSchemaError, CapSyntaxError
from control.cap.mapping import suggest_signal
from control.cap.model import (
    Area,
    CapRequest,
    CapSender,
    CapStatus,
    Circle,
    MsgType,
    Polygon,
    ProgrammeStep,
    Reference,
    SirenAlert,
    TestDayProgramme,
    programme_steps,
)
from control.cap.parse import parse_alert
from control.cap.schema import CAP_NS, MAX_CAP_BYTES, validate

__all__ = [
    "CAP_NS",
    "MAX_CAP_BYTES",
    "PARAM_ACTIVATION",
    "PARAM_EXERCISE",
    "PARAM_KIND",
    "PARAM_SIGNAL",
    "PARAM_STEP",
    "Area",
    "CapError",
    "CapRefused",
    "CapRequest",
    "CapSchemaError",
    "CapSender",
    "CapStatus",
    "CapSyntaxError",
    "Circle",
    "MsgType",
    "Polygon",
    "ProgrammeStep",
    "Reference",
    "SirenAlert",
    "TestDayProgramme",
    "build_alert",
    "parse_alert",
    "programme_steps",
    "suggest_signal",
    "validate",
]
