"""The siren service's data as the API and other services see it (pydantic, typed).

Input models carry every rule a JSON schema can state (patterns, ranges, "at least one
target"), so the OpenAPI spec tells clients exactly what is accepted.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from shelterwatch.contract import SLUG_PATTERN, SirenKind

__all__ = [
    "ActivationEventPublic",
    "ActivationPublic",
    "ActivationRequest",
    "AudibleTestRequest",
    "Decision",
    "DrillRequest",
    "GroupIn",
    "GroupPublic",
    "LastTest",
    "LiveRequest",
    "Preview",
    "PreviewGateway",
    "Profile",
    "SilentTestRequest",
    "SirenCreate",
    "SirenFields",
    "SirenPublic",
    "Slug",
    "TargetPublic",
    "Text",
    "request_fields",
]

Slug = Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)]
# Not blank, and no NUL (PostgreSQL text cannot hold it). Spelled so that every regex engine
# (ours, and the ECMA regexes of OpenAPI clients) agrees on it.
_TEXT = r"^[^\x00]*[^\x00 \t\n\r\f\v][^\x00]*$"
Text = Annotated[str, Field(min_length=1, max_length=2000, pattern=_TEXT)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=_TEXT)]
District = Annotated[str, Field(pattern=r"^([a-z0-9][a-z0-9_-]{0,63})?$", max_length=64)]
Profile = Literal["siren", "siren_relay"]


class SirenFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    site: Slug
    gateway: Slug
    # The siren controller's device id on that gateway.
    device: Slug
    district: District = ""
    # Strict: a number, never a boolean or a numeric string.
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False, strict=True)]
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False, strict=True)]
    # How far it is heard, in metres.
    radius_m: Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False, strict=True)]
    # siren: a controller with built-in signals; siren_relay: a relay the gateway times.
    profile: Profile = "siren"
    # A disabled siren is still targeted (and flagged), never silently skipped.
    enabled: StrictBool = True


class SirenCreate(SirenFields):
    id: Slug


class LastTest(BaseModel):
    # test_passed, test_failed, unreachable, failed, no_answer (a silent test), or
    # self_test_pass / self_test_fail (the controller's own self-test, from telemetry)
    outcome: str
    detail: str
    ts: int
    # silent_test (an activation of this service) or telemetry
    source: Literal["silent_test", "telemetry"]
    activation: str | None = None


class SirenPublic(SirenCreate):
    last_test: LastTest | None
    # Failing its last test, or disabled: still targeted, but a person should look.
    flagged: bool
    flag_reason: str
    created: int
    updated: int


_GROUP_TARGETS: dict[str, Any] = {
    "anyOf": [
        {"required": ["members"], "properties": {"members": {"minItems": 1}}},
        {"required": ["districts"], "properties": {"districts": {"minItems": 1}}},
    ]
}


class GroupIn(BaseModel):
    """A named set of sirens: members and/or districts. ``all`` is built in."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_GROUP_TARGETS)

    description: Annotated[str, Field(max_length=2000, pattern=r"^[^\x00]*$")] = ""
    members: Annotated[list[Slug], Field(max_length=10_000)] = Field(default_factory=list)
    districts: Annotated[list[Slug], Field(max_length=1000)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.members and not self.districts:
            raise ValueError("a group needs at least one member or district")
        return self


class GroupPublic(BaseModel):
    name: str
    description: str
    members: list[str]
    districts: list[str]
    # The sirens it resolves to now (those in the caller's area).
    sirens: list[str]
    # Sirens it resolves to outside the caller's area, left out of the lists above: a
    # request naming the group needs a user whose area covers them.
    sirens_outside_scope: int = 0
    created: int
    updated: int


_REQUEST_TARGETS: dict[str, Any] = {
    "anyOf": [
        {"required": ["sirens"], "properties": {"sirens": {"minItems": 1}}},
        {"required": ["groups"], "properties": {"groups": {"minItems": 1}}},
    ]
}


class _RequestBase(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_REQUEST_TARGETS)

    sirens: Annotated[list[Slug], Field(max_length=10_000)] = Field(default_factory=list)
    groups: Annotated[list[Slug], Field(max_length=1000)] = Field(default_factory=list)
    # Why: the audit trail, the approver and the report show it.
    reason: Text

    @model_validator(mode="after")
    def _targets(self) -> Self:
        if not self.sirens and not self.groups:
            raise ValueError("name at least one siren or group")
        return self


Exercise = Annotated[str, Field(min_length=1, max_length=128, pattern=_TEXT)]


class SilentTestRequest(_RequestBase):
    """A diagnostic through each controller: no sound, so no signal."""

    kind: Literal[SirenKind.SILENT_TEST]
    exercise: Exercise | None = None


class AudibleTestRequest(_RequestBase):
    """The test tone (no signal named), or a full signal on a test day."""

    kind: Literal[SirenKind.AUDIBLE_TEST]
    signal: Slug | None = None
    exercise: Exercise | None = None


class DrillRequest(_RequestBase):
    kind: Literal[SirenKind.DRILL]
    signal: Slug
    # Labels everything the drill sends; "drill" when not given.
    exercise: Exercise | None = None


class LiveRequest(_RequestBase):
    """A live alert: sent only after a second person approves it. Never an exercise."""

    kind: Literal[SirenKind.LIVE]
    signal: Slug


ActivationRequest = Annotated[
    SilentTestRequest | AudibleTestRequest | DrillRequest | LiveRequest,
    Field(discriminator="kind"),
]


def request_fields(body: ActivationRequest) -> dict[str, Any]:
    """The keyword arguments of SirenService.request/preview for a request body."""
    return {
        "kind": body.kind,
        "signal": getattr(body, "signal", None),
        "sirens": list(body.sirens),
        "groups": list(body.groups),
        "exercise": getattr(body, "exercise", None),
    }


class Decision(BaseModel):
    """An approval's, rejection's or cancellation's comment (optional for approval)."""

    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str, Field(max_length=2000, pattern=r"^[^\x00]*$")] = ""


class TargetPublic(BaseModel):
    siren: str
    name: str
    site: str
    gateway: str
    device: str
    district: str
    # "" or why a person should look: disabled, last test failed
    flags: str
    # pending, sent, started, sounded, test_passed, test_failed, unreachable, cancelled,
    # failed, no_answer
    state: str
    final: bool
    detail: str
    command: str | None
    sent: int | None
    started: int | None
    finished: int | None
    # From the command's publication to the final outcome, in ms.
    took_ms: int | None


class ActivationEventPublic(BaseModel):
    ts: int
    actor: str
    event: str
    detail: str


class ActivationPublic(BaseModel):
    id: str
    kind: SirenKind
    signal: str | None
    signal_duration_s: float | None
    # pending_approval, active, cancelling, completed, completed_with_failures, cancelled,
    # expired, rejected
    state: str
    final: bool
    # What the state means now, in words.
    state_detail: str
    reason: str
    requested_sirens: list[str]
    requested_groups: list[str]
    requested_by: str
    requested: int
    approve_by: int | None
    approved_by: str | None
    approved: int | None
    decision_comment: str
    dispatched: int | None
    expires: int | None
    cancelled_by: str | None
    cancelled: int | None
    finished: int | None
    schedule: str | None
    exercise: str | None
    counts: dict[str, int]
    targets: list[TargetPublic]
    events: list[ActivationEventPublic]
    # How many of its targets lie outside the caller's area: left out of ``targets``,
    # ``counts`` and ``requested_sirens``, and their names blotted from the texts.
    targets_outside_scope: int = 0
    # A live alert waiting for approval: the area whose commanders may approve it (the
    # lowest one covering every target), when command areas are set up.
    approval_area: str | None = None


class PreviewGateway(BaseModel):
    gateway: str
    sirens: list[str]


class Preview(BaseModel):
    """What a request would do, for a person to confirm before sending it."""

    kind: SirenKind
    signal: str | None
    signal_duration_s: float | None
    needs_approval: bool
    approval_window_s: float | None
    targets: list[TargetPublic]
    gateways: list[PreviewGateway]
    flagged: int
    warnings: list[str]
