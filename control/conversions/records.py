"""Orders in the control database: locking, reading, listing, and site postures.

Every change to an order, its shelters or its steps happens in a transaction that holds the
order's row lock (``locked``: ``SELECT ... FOR UPDATE`` on PostgreSQL, the database write
lock on SQLite), so the sweep on two replicas and a person's confirmation take turns and a
step is decided once. The audit trail is written after such a transaction commits.

Postures are stored here before anything publishes them (``published_ms`` null); a replica
claims a row with a conditional UPDATE, publishes it, and marks it published only if nobody
changed it meanwhile, so the broker ends with the newest posture whatever the replicas do.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from control.conversions.errors import NotFound
from control.conversions.execution import OrderState
from control.db import (
    CommandRecord,
    ConversionOrder,
    ConversionTarget,
    Database,
    SitePostureRecord,
)

__all__ = [
    "claim_posture",
    "command_states",
    "due_orders",
    "get",
    "list_orders",
    "locked",
    "mark_posture_published",
    "now_ms",
    "postures",
    "release_posture",
    "set_posture",
    "unpublished_postures",
]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _full() -> tuple[object, ...]:
    return (
        selectinload(ConversionOrder.targets).selectinload(ConversionTarget.steps),
        selectinload(ConversionOrder.events),
    )


@asynccontextmanager
async def locked(
    db: Database, order_id: str
) -> AsyncIterator[tuple[AsyncSession, ConversionOrder]]:
    async with db.session() as s, s.begin():
        await db.write_lock(s, ConversionOrder)
        query = (
            select(ConversionOrder)
            .where(ConversionOrder.id == order_id)
            .options(*_full())  # type: ignore[arg-type]
            .with_for_update()
        )
        order = (await s.scalars(query)).one_or_none()
        if order is None:
            raise NotFound(f"no conversion order {order_id!r}")
        yield s, order


async def get(db: Database, order_id: str) -> ConversionOrder:
    async with db.session() as s:
        query = select(ConversionOrder).where(ConversionOrder.id == order_id).options(*_full())  # type: ignore[arg-type]
        order = (await s.scalars(query)).one_or_none()
    if order is None:
        raise NotFound(f"no conversion order {order_id!r}: GET /api/v1/conversions lists them")
    return order


async def list_orders(
    db: Database,
    *,
    state: str | None = None,
    kind: str | None = None,
    site: str | None = None,
    limit: int = 100,
    sites: Collection[str] | None = None,
) -> list[ConversionOrder]:
    """The newest first. ``sites``: only orders with a shelter among them (a caller's scope,
    in SQL so that ``limit`` counts only what the caller may see); None: every order."""
    query = select(ConversionOrder).options(*_full()).order_by(ConversionOrder.requested_ms.desc())  # type: ignore[arg-type]
    if sites is not None:
        query = query.where(ConversionOrder.targets.any(ConversionTarget.site.in_(sites)))
    if state:
        query = query.where(ConversionOrder.state == state)
    if kind:
        query = query.where(ConversionOrder.kind == kind)
    if site:
        query = query.where(ConversionOrder.targets.any(ConversionTarget.site == site))
    async with db.session() as s:
        return list(await s.scalars(query.limit(limit)))


async def due_orders(db: Database) -> list[str]:
    """Running orders, and requests waiting for approval (whose window may run out)."""
    open_states = [OrderState.RUNNING.value, OrderState.PENDING_APPROVAL.value]
    async with db.session() as s:
        rows = await s.scalars(
            select(ConversionOrder.id)
            .where(ConversionOrder.state.in_(open_states))
            .order_by(ConversionOrder.requested_ms)
        )
        return list(rows)


async def command_states(db: Database, ids: list[str]) -> dict[str, tuple[str, str]]:
    if not ids:
        return {}
    async with db.session() as s:
        rows = await s.execute(
            select(CommandRecord.id, CommandRecord.state, CommandRecord.detail).where(
                CommandRecord.id.in_(ids)
            )
        )
        return {r[0]: (r[1], r[2] or "") for r in rows}


# -- postures ---------------------------------------------------------------------------------


async def postures(db: Database) -> dict[str, str]:
    async with db.session() as s:
        rows = await s.execute(select(SitePostureRecord.site, SitePostureRecord.posture))
        return {site: posture for site, posture in rows}


async def set_posture(
    s: AsyncSession,
    site: str,
    posture: str,
    *,
    order_id: str,
    kind: str,
    exercise: str | None,
    now: int,
) -> None:
    """Declare a site's posture inside the caller's transaction; published afterwards."""
    row = await s.get(SitePostureRecord, site)
    if row is None:
        row = SitePostureRecord(site=site)
        s.add(row)
    row.posture = posture
    row.order_id = order_id
    row.kind = kind
    row.exercise = exercise
    # Strictly newer than the version a publisher may hold, so its mark does not stick.
    row.updated_ms = max(now, (row.updated_ms or 0) + 1)
    row.published_ms = None
    row.claimed_by = None
    row.claim_until_ms = None


async def unpublished_postures(db: Database, now: int) -> list[str]:
    async with db.session() as s:
        rows = await s.scalars(
            select(SitePostureRecord.site).where(
                SitePostureRecord.published_ms.is_(None),
                or_(
                    SitePostureRecord.claim_until_ms.is_(None),
                    SitePostureRecord.claim_until_ms < now,
                ),
            )
        )
        return list(rows)


async def claim_posture(
    db: Database, site: str, replica: str, until_ms: int, now: int
) -> SitePostureRecord | None:
    async with db.session() as s, s.begin():
        result = await s.execute(
            update(SitePostureRecord)
            .where(
                SitePostureRecord.site == site,
                SitePostureRecord.published_ms.is_(None),
                or_(
                    SitePostureRecord.claim_until_ms.is_(None),
                    SitePostureRecord.claim_until_ms < now,
                ),
            )
            .values(claimed_by=replica, claim_until_ms=until_ms)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return await s.get(SitePostureRecord, site)


async def mark_posture_published(db: Database, site: str, version: int, now: int) -> bool:
    async with db.session() as s, s.begin():
        result = await s.execute(
            update(SitePostureRecord)
            .where(SitePostureRecord.site == site, SitePostureRecord.updated_ms == version)
            .values(published_ms=now, claimed_by=None, claim_until_ms=None)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def release_posture(db: Database, site: str, retry_at_ms: int | None = None) -> None:
    """Give the claim up: now, or hold it until ``retry_at_ms`` (the broker refused it)."""
    async with db.session() as s, s.begin():
        await s.execute(
            update(SitePostureRecord)
            .where(SitePostureRecord.site == site)
            .values(claimed_by=None, claim_until_ms=retry_at_ms)
        )
