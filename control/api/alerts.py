"""Alerts: read them (viewer or higher), acknowledge one (maintainer or higher, with a comment).

Each within the caller's area: an alert belongs to its site, a list shows only the alerts of
sites in scope, and an alert of a site outside it answers 404 like an id that does not exist.

An alert is raised and cleared by the collector's alert engine over MQTT; people only
acknowledge it. Each alert carries its history (``events``) and its webhook notifications,
including deliveries that were given up.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field

from control.alerts import (
    AlertAlreadyAcknowledged,
    AlertNotFound,
    AlertService,
    AlertsUnavailable,
    alert_public,
)
from control.api.deps import (
    BAD_JSON,
    FORBIDDEN,
    UNAUTHORIZED,
    Allow,
    ErrorDetail,
    ScopeDep,
    StrictQuery,
)
from control.auth import Permission, Principal
from control.db.models import AlertNotification, AlertRecord
from shelterwatch.contract import SLUG_PATTERN

__all__ = [
    "AlertAck",
    "AlertDetail",
    "AlertEventPublic",
    "AlertNotificationPublic",
    "AlertPublic",
    "router",
]

router = APIRouter(
    prefix="/api/v1/alerts",
    tags=["alerts"],
    dependencies=[StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)

Reader = Annotated[Principal, Allow(Permission.ALERTS_READ)]
Acknowledger = Annotated[Principal, Allow(Permission.ALERTS_ACK)]
AlertId = Annotated[int, Path(ge=1, le=2**62)]
Severity = Literal["critical", "major", "minor", "warning"]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such alert", "model": ErrorDetail}
}


def _service(request: Request) -> AlertService:
    service: AlertService = request.state.alerts
    return service


class AlertAck(BaseModel):
    # Why it is acknowledged and what is being done: the next shift reads it. Not blank; the
    # rule is a pattern so that the OpenAPI spec states it too.
    # "Not only spaces", spelled so that every regex engine agrees on it (\S differs between
    # the ECMA regexes of OpenAPI clients and ours on characters such as U+0085).
    # Not blank, and no NUL (PostgreSQL text cannot hold it).
    comment: Annotated[
        str, Field(min_length=1, max_length=2000, pattern=r"^[^\x00]*[^\x00 \t\n\r\f\v][^\x00]*$")
    ]


class AlertPublic(BaseModel):
    id: int
    site: str
    rule: str
    device: str
    severity: str
    kind: str
    point: str | None
    message: str
    value: bool | int | float | str | None
    predicted_ts: int | None
    raised_ts: int
    cleared_ts: int | None
    # raised, acknowledged or cleared; `acknowledged` also tells a cleared alert someone saw
    state: str
    acknowledged: bool
    acked_by: str | None
    acked_ts: int | None
    ack_comment: str | None
    last_notified_ts: int | None
    updated_ts: int


class AlertEventPublic(BaseModel):
    # raised, updated, acknowledged, cleared, repeat, notification_failed
    event: str
    ts: int
    actor: str
    detail: str


class AlertNotificationPublic(BaseModel):
    id: str
    webhook: str
    event: str
    # pending, delivered, failed (given up after its attempts)
    state: str
    attempts: int
    last_error: str
    next_attempt_ts: int | None
    created_ts: int
    delivered_ts: int | None


class AlertDetail(AlertPublic):
    events: list[AlertEventPublic]
    notifications: list[AlertNotificationPublic]


def _notification(row: AlertNotification) -> AlertNotificationPublic:
    return AlertNotificationPublic(
        id=row.id,
        webhook=row.webhook,
        event=row.event,
        state=row.state,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_ts=row.next_attempt_ts if row.state == "pending" else None,
        created_ts=row.created_ts,
        delivered_ts=row.delivered_ts,
    )


async def _detail(service: AlertService, record: AlertRecord) -> AlertDetail:
    events = [
        AlertEventPublic(event=e.event, ts=e.ts, actor=e.actor, detail=e.detail)
        for e in record.events
    ]
    notifications = [_notification(n) for n in await service.notifications(record.id)]
    return AlertDetail(**alert_public(record), events=events, notifications=notifications)


@router.get("")
async def list_alerts(
    _user: Reader,
    request: Request,
    scope: ScopeDep,
    state: Literal["active", "all"] = "active",
    site: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)] = None,
    severity: Severity | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlertPublic]:
    """The newest first; ``state=active`` (the default) leaves out cleared alerts."""
    rows = await _service(request).recent(
        active_only=state == "active", site=site, severity=severity, limit=limit, scope=scope
    )
    return [AlertPublic(**alert_public(r)) for r in rows]


@router.get("/{alert_id}", responses=_NOT_FOUND)
async def get_alert(
    _user: Reader, request: Request, scope: ScopeDep, alert_id: AlertId
) -> AlertDetail:
    service = _service(request)
    record = await service.get(alert_id, scope)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
    return await _detail(service, record)


@router.post(
    "/{alert_id}/ack",
    responses={
        **BAD_JSON,
        **_NOT_FOUND,
        409: {"description": "Already acknowledged", "model": ErrorDetail},
        503: {"description": "Acknowledgements cannot be recorded now", "model": ErrorDetail},
    },
)
async def acknowledge_alert(
    body: AlertAck, user: Acknowledger, request: Request, scope: ScopeDep, alert_id: AlertId
) -> AlertDetail:
    service = _service(request)
    try:
        record = await service.acknowledge(alert_id, user.username, body.comment, scope)
    except AlertNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except AlertAlreadyAcknowledged as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except AlertsUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    return await _detail(service, record)
