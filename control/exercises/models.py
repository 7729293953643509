"""What the exercise API takes and answers."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from control.auth.accounts import USERNAME_PATTERN
from shelterwatch.contract import SLUG_PATTERN

__all__ = [
    "AfterActionReport",
    "AreaSummary",
    "ExerciseCreate",
    "ExerciseId",
    "ExercisePublic",
    "ExerciseState",
    "InjectRequest",
    "Note",
    "SituationPublic",
    "SituationTiming",
    "Stage",
]

Slug = Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)]
# The exercise's id is its label: a slug, so it fits every column and topic that carries it.
ExerciseId = Slug
ExerciseState = Literal["planned", "running", "ended"]
# Not blank, and no NUL (PostgreSQL text cannot hold it).
_TEXT = r"^[^\x00]*[^\x00 \t\n\r\f\v][^\x00]*$"
_NO_NUL = r"^[^\x00]*$"
# Epoch ms up to the year 9999: a number a BIGINT and every client hold.
EpochMs = Annotated[int, Field(ge=0, le=253_402_300_799_999)]


class ExerciseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: ExerciseId
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=_TEXT)]
    scenario: Annotated[str, Field(max_length=20_000, pattern=_NO_NUL)] = ""
    areas: Annotated[list[Slug], Field(min_length=1, max_length=200)]
    # A commander whose area covers every participating area.
    director: Annotated[str, Field(pattern=USERNAME_PATTERN, max_length=64)]
    planned_start_ms: EpochMs
    planned_end_ms: EpochMs

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.planned_end_ms <= self.planned_start_ms:
            raise ValueError("planned_end_ms must come after planned_start_ms")
        if len(set(self.areas)) != len(self.areas):
            raise ValueError("each participating area once")
        return self


class ExercisePublic(BaseModel):
    id: str
    # What every command, order, CAP message and report of the exercise carries.
    label: str
    name: str
    scenario: str
    areas: list[str]
    director: str
    state: ExerciseState
    planned_start_ms: int
    planned_end_ms: int
    started_ms: int | None
    ended_ms: int | None
    created_by: str
    created_ms: int
    updated_ms: int
    situations: int


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str, Field(max_length=2000, pattern=_NO_NUL)] = ""


class InjectRequest(BaseModel):
    """One situation by ``kind`` and target (``site``, or ``siren`` for a siren situation),
    or ``random`` situations drawn with ``seed``: the same seed draws the same situations."""

    model_config = ConfigDict(extra="forbid")

    kind: Slug | None = None
    site: Slug | None = None
    siren: Slug | None = None
    random: Annotated[int, Field(ge=0, le=20)] = 0
    seed: Annotated[int, Field(ge=0, le=2**53)] | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.random:
            if self.seed is None:
                raise ValueError("random situations need a seed, so the draw can be repeated")
            if self.kind or self.site or self.siren:
                raise ValueError("give either kind and target, or random and seed")
        elif self.kind is None:
            raise ValueError("name a situation kind (GET /api/v1/exercises/library), or random")
        elif (self.site is None) == (self.siren is None):
            raise ValueError("name the target: site, or siren for a siren situation")
        return self


class SituationPublic(BaseModel):
    id: str
    exercise: str
    number: int
    kind: str
    title_zh: str
    title_en: str
    site: str
    area: str
    gateway: str
    device: str
    siren: str
    fault: str
    origin: str
    injected_by: str
    injected_ms: int
    published: bool
    publish_detail: str
    repaired_by: str | None
    repaired_ms: int | None
    # The alerts labelled with the exercise as this situation's.
    alerts: list[int]


class Stage(BaseModel):
    """One step of a response: when, how long after the inject, who, of which area, and the
    audit row it comes from (None for what no person did: an alert raised, an outcome)."""

    at_ms: int | None = None
    after_ms: int | None = None
    by: str | None = None
    area: str | None = None
    what: str = ""
    audit_seq: int | None = None


class SituationTiming(BaseModel):
    exercise: str
    situation: str
    kind: str
    site: str
    area: str
    injected_ms: int
    inject_seq: int
    detected: Stage
    acknowledged: Stage
    acted: Stage
    resolved: Stage
    # open (running, not resolved), responded, resolved, or missed (no response by the end)
    status: Literal["open", "responded", "resolved", "missed"]


class AreaSummary(BaseModel):
    exercise: str
    area: str
    name: str
    situations: int
    responded: int
    resolved: int
    missed: int
    mean_detect_ms: float | None
    median_detect_ms: float | None
    mean_ack_ms: float | None
    median_ack_ms: float | None
    mean_act_ms: float | None
    median_act_ms: float | None
    mean_resolve_ms: float | None
    median_resolve_ms: float | None


class AfterActionReport(BaseModel):
    exercise: str
    label: str
    name: str
    scenario: str
    areas: list[str]
    director: str
    state: ExerciseState
    started_ms: int | None
    ended_ms: int | None
    generated_ms: int
    by_area: list[AreaSummary]
    situations: list[SituationTiming]
    missed: list[str]
