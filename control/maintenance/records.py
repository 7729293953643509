"""The maintenance tables: completions and work orders (control/db/maintenance_models.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from control.db import ConversionOrder, ConversionTarget, Database, MaintenanceRecord, WorkOrder
from control.maintenance.evidence import Finding
from control.maintenance.schedule import Completion

__all__ = [
    "add_telemetry",
    "completions",
    "last_drill",
    "list_orders",
]


async def completions(db: Database, site: str) -> list[Completion]:
    query = select(MaintenanceRecord).where(MaintenanceRecord.site == site)
    async with db.session() as s:
        rows = list(await s.scalars(query.order_by(MaintenanceRecord.done_ms)))
    return [
        Completion(
            item=r.item,
            ts_ms=r.done_ms,
            source="manual" if r.source == "manual" else "telemetry",
            device=r.device,
            actor=r.actor,
            note=r.note,
            detail=r.detail,
        )
        for r in rows
    ]


async def add_telemetry(
    db: Database, site: str, item: str, device: str, findings: Sequence[Finding], now_ms: int
) -> int:
    """Record findings not yet on record; returns how many were new. Finding one again (the
    next assessment, another replica) changes nothing."""
    if not findings:
        return 0
    query = select(MaintenanceRecord.done_ms).where(
        MaintenanceRecord.site == site,
        MaintenanceRecord.item == item,
        MaintenanceRecord.source == "telemetry",
        MaintenanceRecord.device == device,
    )
    async with db.session() as s:
        known = set(await s.scalars(query))
        new = [f for f in findings if f.ts_ms not in known]
        if not new:
            return 0
        s.add_all(
            MaintenanceRecord(
                site=site,
                item=item,
                source="telemetry",
                device=device,
                done_ms=f.ts_ms,
                actor="telemetry",
                note="",
                detail=f.detail,
                created_ms=now_ms,
            )
            for f in new
        )
        try:
            await s.commit()
        except IntegrityError:
            # Another replica recorded the same finding in between: it is on record.
            await s.rollback()
            return 0
    return len(new)


async def last_drill(db: Database, site: str) -> tuple[int | None, bool]:
    """When the site's last completed conversion drill finished, and whether it missed its
    deadline; (None, False) when it never completed one."""
    query = (
        select(ConversionTarget.finished_ms, ConversionOrder.missed)
        .join(ConversionOrder, ConversionTarget.order_id == ConversionOrder.id)
        .where(
            ConversionTarget.site == site,
            ConversionOrder.kind == "drill",
            ConversionOrder.direction == "to_wartime",
            ConversionOrder.state == "completed",
            ConversionTarget.finished_ms.is_not(None),
        )
        .order_by(ConversionTarget.finished_ms.desc())
        .limit(1)
    )
    async with db.session() as s:
        row = (await s.execute(query)).first()
    if row is None:
        return None, False
    return row[0], bool(row[1])


async def list_orders(
    db: Database,
    *,
    sites: Iterable[str] | None = None,
    states: Iterable[str] | None = None,
    limit: int = 100,
) -> list[WorkOrder]:
    query = select(WorkOrder)
    if sites is not None:
        query = query.where(WorkOrder.site.in_(list(sites)))
    if states is not None:
        query = query.where(WorkOrder.state.in_(list(states)))
    query = query.order_by(WorkOrder.due_ms, WorkOrder.id).limit(limit)
    async with db.session() as s:
        return list(await s.scalars(query))
