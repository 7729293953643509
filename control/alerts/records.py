"""Alert records in the control database: recording the engine's events, acknowledgement,
the repeat of unacknowledged critical alerts, and the webhook delivery queue.

Every function runs in its own transaction. Notifications are queued in the same transaction
as the change that causes them, and only by the transaction that makes that change (the
insert that wins the unique key, the update that moves the state), so duplicates delivered by
the broker, or the same alert recorded by two replicas, queue nothing twice.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Exists, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, selectinload

from control.alerts.webhooks import wants
from control.db import Database
from control.db.models import AlertEvent, AlertNotification, AlertRecord
from control.settings import WebhookSettings
from shelterwatch.contract import Alert

__all__ = [
    "ACTIVE",
    "Applied",
    "acknowledge",
    "alert_public",
    "claim",
    "due_notifications",
    "finish_attempt",
    "get",
    "list_alerts",
    "next_due_ts",
    "notifications_of",
    "now_ms",
    "record_event",
    "release",
    "repeat_due",
]

RAISED, ACKNOWLEDGED, CLEARED = "raised", "acknowledged", "cleared"
ACTIVE = (RAISED, ACKNOWLEDGED)
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
ENGINE_ACTOR = "alert-engine"
SERVICE_ACTOR = "control-service"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _json(value: object) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def alert_public(record: AlertRecord) -> dict[str, Any]:
    """The alert as the API and the webhooks show it (without its history)."""
    return {
        "id": record.id,
        "site": record.site,
        "rule": record.rule,
        "device": record.device,
        "severity": record.severity,
        "kind": record.kind,
        "point": record.point,
        "message": record.message,
        "value": None if record.value is None else json.loads(record.value),
        "predicted_ts": record.predicted_ts,
        "raised_ts": record.raised_ts,
        "cleared_ts": record.cleared_ts,
        "state": record.state,
        "acknowledged": record.acked_by is not None,
        "acked_by": record.acked_by,
        "acked_ts": record.acked_ts,
        "ack_comment": record.ack_comment,
        "last_notified_ts": record.last_notified_ts,
        "updated_ts": record.updated_ts,
    }


def _queue(
    s: AsyncSession,
    record: AlertRecord,
    event: str,
    webhooks: Sequence[WebhookSettings],
    now: int,
) -> int:
    """Queue ``event`` of ``record`` for every webhook that wants its severity; flush first so
    the record has its id."""
    queued = 0
    for webhook in webhooks:
        if not wants(webhook, record.severity):
            continue
        delivery = uuid.uuid4().hex
        body = {"delivery": delivery, "event": event, "ts": now, "alert": alert_public(record)}
        s.add(
            AlertNotification(
                id=delivery,
                alert_id=record.id,
                webhook=webhook.name,
                event=event,
                body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                state=PENDING,
                attempts=0,
                next_attempt_ts=now,
                last_error="",
                created_ts=now,
                updated_ts=now,
            )
        )
        queued += 1
    if queued:
        record.last_notified_ts = now
    return queued


@dataclass(frozen=True, slots=True)
class Applied:
    """What one alert message did: the record, the history event it added, and how many
    notifications it queued."""

    record: AlertRecord
    event: str
    queued: int


def _locked(site: str, rule: str, device: str) -> Any:
    return (
        select(AlertRecord)
        .where(AlertRecord.site == site, AlertRecord.rule == rule, AlertRecord.device == device)
        .options(selectinload(AlertRecord.events))
        .with_for_update()
    )


async def record_event(
    db: Database,
    site: str,
    rule: str,
    device: str,
    alert: Alert,
    webhooks: Sequence[WebhookSettings],
) -> Applied | None:
    """Record one alert message; None when it changes nothing (a duplicate or re-delivery)."""
    for _ in range(3):
        try:
            if alert.active:
                return await _raise(db, site, rule, device, alert, webhooks)
            return await _clear(db, site, rule, device, alert, webhooks)
        except IntegrityError:
            # Another replica inserted the same alert between our look and our insert; the
            # next round finds its row.
            continue
    return None


async def _raise(
    db: Database,
    site: str,
    rule: str,
    device: str,
    alert: Alert,
    webhooks: Sequence[WebhookSettings],
) -> Applied | None:
    now = now_ms()
    raised_ts = alert.raised_ts if alert.raised_ts is not None else alert.ts
    async with db.session() as s, s.begin():
        query = _locked(site, rule, device).where(AlertRecord.raised_ts == raised_ts)
        record = (await s.scalars(query)).one_or_none()
        if record is None:
            record = AlertRecord(
                site=site,
                rule=rule,
                device=device,
                severity=alert.severity,
                kind=alert.kind,
                point=alert.point,
                message=alert.message,
                value=_json(alert.value),
                predicted_ts=alert.predicted_ts,
                raised_ts=raised_ts,
                state=RAISED,
                updated_ts=now,
                events=[
                    AlertEvent(
                        event=RAISED,
                        ts=alert.ts,
                        actor=ENGINE_ACTOR,
                        detail=alert.message,
                        value=_json(alert.value),
                    )
                ],
            )
            s.add(record)
            await s.flush()
            return Applied(record, RAISED, _queue(s, record, RAISED, webhooks, now))
        if record.state == CLEARED:
            # The retained raise of an alert whose clearing we already have: a re-delivery
            # after a reconnect, never a reopening.
            return None
        changed = (record.severity, record.message, record.value) != (
            alert.severity,
            alert.message,
            _json(alert.value),
        )
        if not changed:
            return None  # the same raise again (QoS 1 duplicate, retained re-delivery)
        escalated = record.severity != alert.severity
        detail = alert.message
        if escalated:
            detail = f"severity {record.severity} -> {alert.severity}: {alert.message}"
        record.severity = alert.severity
        record.message = alert.message
        record.value = _json(alert.value)
        record.predicted_ts = alert.predicted_ts
        record.updated_ts = now
        record.events.append(
            AlertEvent(
                event="updated",
                ts=alert.ts,
                actor=ENGINE_ACTOR,
                detail=detail,
                value=_json(alert.value),
            )
        )
        # A changed severity is news to the receivers (an escalation to critical above all);
        # a new value alone is not worth a message.
        queued = _queue(s, record, "updated", webhooks, now) if escalated else 0
        return Applied(record, "updated", queued)


async def _clear(
    db: Database,
    site: str,
    rule: str,
    device: str,
    alert: Alert,
    webhooks: Sequence[WebhookSettings],
) -> Applied | None:
    now = now_ms()
    async with db.session() as s, s.begin():
        query = _locked(site, rule, device)
        if alert.raised_ts is not None:
            query = query.where(AlertRecord.raised_ts == alert.raised_ts)
        else:
            # Without raised_ts the clearing applies to the newest open alert of its subject.
            query = query.where(AlertRecord.state.in_(ACTIVE))
        query = query.order_by(AlertRecord.raised_ts.desc()).limit(1)
        record = (await s.scalars(query)).one_or_none()
        cleared = AlertEvent(
            event=CLEARED,
            ts=alert.ts,
            actor=ENGINE_ACTOR,
            detail=alert.message,
            value=_json(alert.value),
        )
        if record is None:
            # The raise never reached us (a new database, or it was cleared before we ever
            # subscribed). Keep the history anyway; there is nothing to notify.
            record = AlertRecord(
                site=site,
                rule=rule,
                device=device,
                severity=alert.severity,
                kind=alert.kind,
                point=alert.point,
                message=alert.message,
                value=_json(alert.value),
                predicted_ts=alert.predicted_ts,
                raised_ts=alert.raised_ts if alert.raised_ts is not None else alert.ts,
                cleared_ts=alert.ts,
                state=CLEARED,
                updated_ts=now,
                events=[cleared],
            )
            s.add(record)
            await s.flush()
            return Applied(record, CLEARED, 0)
        if record.state == CLEARED:
            return None
        record.state = CLEARED
        record.cleared_ts = alert.ts
        record.value = _json(alert.value)
        record.updated_ts = now
        record.events.append(cleared)
        # The alert as it was raised stays; the clearing message lives in the event.
        return Applied(record, CLEARED, _queue(s, record, CLEARED, webhooks, now))


@dataclass(frozen=True, slots=True)
class AckOutcome:
    record: AlertRecord | None
    # Who acknowledged it first, when someone did.
    already_by: str | None = None


async def acknowledge(
    db: Database,
    alert_id: int,
    actor: str,
    comment: str,
    webhooks: Sequence[WebhookSettings],
) -> AckOutcome:
    """Mark the alert acknowledged by ``actor`` (once: the first acknowledgement stands)."""
    now = now_ms()
    async with db.session() as s, s.begin():
        query = (
            select(AlertRecord)
            .where(AlertRecord.id == alert_id)
            .options(selectinload(AlertRecord.events))
            .with_for_update()
        )
        record = (await s.scalars(query)).one_or_none()
        if record is None:
            return AckOutcome(None)
        if record.acked_by is not None:
            return AckOutcome(record, already_by=record.acked_by)
        record.acked_by = actor
        record.acked_ts = now
        record.ack_comment = comment
        if record.state == RAISED:
            record.state = ACKNOWLEDGED
        # A cleared alert stays cleared; its acknowledgement says someone looked at it.
        record.updated_ts = now
        record.events.append(AlertEvent(event=ACKNOWLEDGED, ts=now, actor=actor, detail=comment))
        await s.flush()
        _queue(s, record, ACKNOWLEDGED, webhooks, now)
        return AckOutcome(record)


async def repeat_due(
    db: Database, repeat_ms: int, webhooks: Sequence[WebhookSettings], limit: int = 200
) -> int:
    """Queue the repeat of every critical alert still raised (not acknowledged, not cleared)
    whose last notification is ``repeat_ms`` old. Returns how many alerts repeated."""
    now = now_ms()
    async with db.session() as s:
        rows = await s.execute(
            select(AlertRecord.id, AlertRecord.last_notified_ts)
            .where(
                AlertRecord.state == RAISED,
                AlertRecord.severity == "critical",
                AlertRecord.last_notified_ts.is_not(None),
                AlertRecord.last_notified_ts <= now - repeat_ms,
            )
            .order_by(AlertRecord.last_notified_ts)
            .limit(limit)
        )
        due = [(r[0], r[1]) for r in rows]
    repeated = 0
    for alert_id, last in due:
        async with db.session() as s, s.begin():
            # Compare-and-set on the last notification time: of two replicas sweeping at
            # once, one repeats.
            won = await s.execute(
                update(AlertRecord)
                .where(
                    AlertRecord.id == alert_id,
                    AlertRecord.state == RAISED,
                    AlertRecord.last_notified_ts == last,
                )
                .values(last_notified_ts=now)
            )
            if getattr(won, "rowcount", 0) != 1:
                continue
            record = (await s.scalars(select(AlertRecord).where(AlertRecord.id == alert_id))).one()
            queued = _queue(s, record, "repeat", webhooks, now)
            s.add(
                AlertEvent(
                    alert_id=alert_id,
                    event="repeat",
                    ts=now,
                    actor=SERVICE_ACTOR,
                    detail=f"not acknowledged; notified again ({queued} webhook(s))",
                )
            )
            repeated += 1
    return repeated


# -- the delivery queue -------------------------------------------------------------------------


def _waits_for_earlier() -> Exists:
    earlier = aliased(AlertNotification)
    return exists().where(
        earlier.alert_id == AlertNotification.alert_id,
        earlier.webhook == AlertNotification.webhook,
        earlier.state == PENDING,
        earlier.created_ts < AlertNotification.created_ts,
    )


async def due_notifications(db: Database, limit: int = 50) -> list[AlertNotification]:
    """Pending notifications due now, each the oldest pending one of its alert and webhook:
    a receiver gets an alert's events in order (never "cleared" before a retried "raised")."""
    now = now_ms()
    async with db.session() as s:
        rows = await s.scalars(
            select(AlertNotification)
            .where(
                AlertNotification.state == PENDING,
                AlertNotification.next_attempt_ts <= now,
                ~_waits_for_earlier(),
            )
            .order_by(AlertNotification.next_attempt_ts, AlertNotification.created_ts)
            .limit(limit)
        )
        return list(rows)


async def next_due_ts(db: Database) -> int | None:
    async with db.session() as s:
        due: int | None = await s.scalar(
            # Rows waiting behind an earlier one do not count, or a due but blocked row
            # would keep the delivery loop awake.
            select(func.min(AlertNotification.next_attempt_ts)).where(
                AlertNotification.state == PENDING, ~_waits_for_earlier()
            )
        )
        return due


async def claim(db: Database, notification: AlertNotification, lease_ms: int) -> bool:
    """Take a due notification for one attempt. The lease (its next_attempt_ts pushed ahead)
    keeps other replicas off it meanwhile, and hands it back if this process dies mid-try."""
    now = now_ms()
    async with db.session() as s, s.begin():
        won = await s.execute(
            update(AlertNotification)
            .where(
                AlertNotification.id == notification.id,
                AlertNotification.state == PENDING,
                AlertNotification.next_attempt_ts == notification.next_attempt_ts,
            )
            .values(
                next_attempt_ts=now + lease_ms,
                attempts=AlertNotification.attempts + 1,
                updated_ts=now,
            )
        )
        return getattr(won, "rowcount", 0) == 1


async def release(db: Database, notification_id: str) -> None:
    """Hand a claimed notification back untried (the service is stopping)."""
    now = now_ms()
    async with db.session() as s, s.begin():
        await s.execute(
            update(AlertNotification)
            .where(AlertNotification.id == notification_id, AlertNotification.state == PENDING)
            .values(
                next_attempt_ts=now,
                attempts=AlertNotification.attempts - 1,
                updated_ts=now,
            )
        )


async def finish_attempt(
    db: Database,
    notification_id: str,
    *,
    ok: bool,
    detail: str,
    retry_at: int | None,
) -> AlertNotification | None:
    """Record an attempt: delivered, retry at ``retry_at``, or (``retry_at`` None) failed for
    good, which also goes into the alert's history. Returns the updated row."""
    now = now_ms()
    async with db.session() as s, s.begin():
        row = (
            await s.scalars(
                select(AlertNotification)
                .where(AlertNotification.id == notification_id)
                .with_for_update()
            )
        ).one_or_none()
        if row is None or row.state != PENDING:
            return None
        row.updated_ts = now
        row.last_error = "" if ok else detail
        if ok:
            row.state = DELIVERED
            row.delivered_ts = now
        elif retry_at is not None:
            row.next_attempt_ts = retry_at
        else:
            row.state = FAILED
            s.add(
                AlertEvent(
                    alert_id=row.alert_id,
                    event="notification_failed",
                    ts=now,
                    actor=SERVICE_ACTOR,
                    detail=f"{row.event} notification to webhook {row.webhook} given up after "
                    f"{row.attempts} attempt(s): {detail}",
                )
            )
        return row


# -- reading ------------------------------------------------------------------------------------


async def get(db: Database, alert_id: int) -> AlertRecord | None:
    async with db.session() as s:
        query = (
            select(AlertRecord)
            .where(AlertRecord.id == alert_id)
            .options(selectinload(AlertRecord.events))
        )
        return (await s.scalars(query)).one_or_none()


async def notifications_of(db: Database, alert_id: int) -> list[AlertNotification]:
    async with db.session() as s:
        rows = await s.scalars(
            select(AlertNotification)
            .where(AlertNotification.alert_id == alert_id)
            .order_by(AlertNotification.created_ts, AlertNotification.webhook)
        )
        return list(rows)


async def list_alerts(
    db: Database,
    *,
    active_only: bool,
    site: str | None,
    severity: str | None,
    limit: int,
    sites: Collection[str] | None = None,
) -> list[AlertRecord]:
    """The newest alerts first; only of ``sites`` unless it is None (a caller's scope, in
    SQL so that ``limit`` counts only what the caller may see)."""
    query = select(AlertRecord)
    if sites is not None:
        query = query.where(AlertRecord.site.in_(sites))
    if active_only:
        query = query.where(AlertRecord.state.in_(ACTIVE))
    if site is not None:
        query = query.where(AlertRecord.site == site)
    if severity is not None:
        query = query.where(AlertRecord.severity == severity)
    query = query.order_by(AlertRecord.raised_ts.desc(), AlertRecord.id.desc()).limit(limit)
    async with db.session() as s:
        return list(await s.scalars(query))
