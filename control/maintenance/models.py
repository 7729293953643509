"""The maintenance API's request and answer bodies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shelterwatch.contract import SLUG_PATTERN

__all__ = [
    "AlertWorkOrderRequest",
    "CausePublic",
    "CompletionPublic",
    "Confirmation",
    "ItemStatusPublic",
    "ReadinessPointPublic",
    "ReadinessPublic",
    "SiteMaintenance",
    "WorkOrderClose",
    "WorkOrderPublic",
    "WorkOrderRequest",
    "WorkOrderStart",
    "WorkOrderState",
]

WorkOrderState = Literal["open", "in_progress", "done", "cancelled"]
_NOTE = Annotated[str, Field(min_length=1, max_length=2000, pattern=r"\S")]
_MS = Annotated[int, Field(ge=0, le=253_402_300_799_999)]


class Confirmation(BaseModel):
    """A person confirms an item done, with a note (what was done, by whom, any finding)."""

    model_config = ConfigDict(extra="forbid")

    note: _NOTE
    # When it was done (epoch ms, not in the future); now when not given.
    done_ms: _MS | None = None


class CompletionPublic(BaseModel):
    ts_ms: int
    source: Literal["telemetry", "manual"]
    device: str
    actor: str
    note: str
    detail: str


class ItemStatusPublic(BaseModel):
    item: str
    equipment: str
    title_zh: str
    title_en: str
    period_days: int
    clause: str
    detector: str | None
    state: Literal["done", "scheduled", "due", "overdue"]
    due_ms: int
    last: CompletionPublic | None
    done_in_period: list[CompletionPublic]


class SiteMaintenance(BaseModel):
    site: str
    programme: str
    now_ms: int
    counts: dict[str, int]
    items: list[ItemStatusPublic]


class CausePublic(BaseModel):
    key: str
    points: int
    count: int
    detail: str


class ReadinessPublic(BaseModel):
    site: str
    state: str
    score: int
    causes: list[CausePublic]
    reasons: list[str]


class ReadinessPointPublic(BaseModel):
    """A recorded readiness (the maintenance sweep's, in the time-series store)."""

    ts_ms: int
    score: int
    state: str
    # The causes of lost points: ``minor_alerts −3; maintenance_overdue −10``.
    causes: str


class WorkOrderRequest(BaseModel):
    """A work order by hand, optionally about a programme item."""

    model_config = ConfigDict(extra="forbid")

    site: Annotated[str, Field(pattern=SLUG_PATTERN)]
    title: Annotated[str, Field(min_length=1, max_length=300, pattern=r"\S")]
    detail: Annotated[str, Field(max_length=4000)] = ""
    assignee: Annotated[str, Field(max_length=128)] = ""
    # Epoch ms; ``maintenance.work_order_days`` from now when not given.
    due_ms: _MS | None = None
    item: Annotated[str, Field(pattern=SLUG_PATTERN)] | None = None


class AlertWorkOrderRequest(BaseModel):
    """A work order for an alert: its site, title and programme item (the item whose
    ``alert_rules`` name the alert's rule) come from the alert. One per alert."""

    model_config = ConfigDict(extra="forbid")

    alert_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    detail: Annotated[str, Field(max_length=4000)] = ""
    assignee: Annotated[str, Field(max_length=128)] = ""
    due_ms: _MS | None = None


class WorkOrderStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: Annotated[str, Field(max_length=128)] | None = None


class WorkOrderClose(BaseModel):
    """Closing (done) or cancelling: the note says what was done or why not."""

    model_config = ConfigDict(extra="forbid")

    note: _NOTE


class WorkOrderPublic(BaseModel):
    id: str
    site: str
    item: str | None
    alert_id: int | None
    origin: str | None
    title: str
    detail: str
    assignee: str
    due_ms: int
    state: WorkOrderState
    created_by: str
    created_ms: int
    updated_ms: int
    closed_by: str | None
    closed_ms: int | None
    closing_note: str
