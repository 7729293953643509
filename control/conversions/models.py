"""What the conversion API takes and answers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from control.conversions.plans import Direction, Step
from shelterwatch.contract import SLUG_PATTERN

__all__ = [
    "Confirmation",
    "Decision",
    "EventPublic",
    "OrderPublic",
    "OrderRequest",
    "PlanPublic",
    "ShelterRef",
    "StepPublic",
    "TargetPublic",
]

Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
# Free text may hold anything but NUL, which PostgreSQL text cannot hold.
_NO_NUL = r"^[^\x00]*$"
OrderKind = Literal["drill", "real"]


class ShelterRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: Slug
    # The gateway that drives its devices; default from conversions.gateway_pattern.
    gateway: Slug | None = None


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    direction: Direction = "to_wartime"
    kind: OrderKind
    level: Slug
    shelters: Annotated[list[ShelterRef], Field(min_length=1, max_length=500)]
    reason: Annotated[str, Field(min_length=1, max_length=2000, pattern=_NO_NUL)]
    # A plan to run at every shelter instead of each site's own (its direction must match).
    plan: Slug | None = None
    # A drill's label, shown on everything it makes ("drill" by default); not for real orders.
    exercise: Slug | None = None


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str, Field(max_length=2000, pattern=_NO_NUL)] = ""


class Confirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: Slug
    step: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")]
    note: Annotated[str, Field(min_length=1, max_length=2000, pattern=_NO_NUL)]


class StepPublic(BaseModel):
    step: str
    kind: str
    title_zh: str
    title_en: str
    after: list[str]
    checks: list[str]
    state: str
    detail: str
    started_ms: int | None
    done_ms: int | None
    took_ms: int | None
    confirmed_by: str | None
    note: str
    attempts: int
    regressions: int
    command_id: str | None


class TargetPublic(BaseModel):
    site: str
    gateway: str
    plan: str
    plan_version: int
    plan_hash: str
    posture_before: str
    finished_ms: int | None
    steps: list[StepPublic]


class EventPublic(BaseModel):
    ts_ms: int
    actor: str
    event: str
    site: str
    step: str
    detail: str


class OrderPublic(BaseModel):
    id: str
    direction: str
    kind: OrderKind
    level: str
    level_title: str
    exercise: str | None
    area: str | None
    state: str
    detail: str
    reason: str
    requested_by: str
    requested_ms: int
    approve_by_ms: int | None
    approved_by: str | None
    approved_ms: int | None
    started_ms: int | None
    deadline_s: float
    deadline_ms: int | None
    warn_ms: int | None
    warned: bool
    deadline_missed: bool
    finished_ms: int | None
    cancelled_by: str | None
    steps_total: int
    steps_done: int
    steps_regressed: int
    targets: list[TargetPublic]
    events: list[EventPublic]


class PlanPublic(BaseModel):
    name: str
    version: int
    hash: str
    source: str
    direction: Direction
    default: bool
    sites: list[str]
    shelter_type: str
    title_zh: str
    title_en: str
    # In the order they can be done (each after its dependencies): the checklist.
    steps: list[Step]
