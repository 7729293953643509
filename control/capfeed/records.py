"""CAP message rows (control.db.CapMessage): store, claim, mark published, read.

Every function is one transaction. A message is stored before anything publishes it; a
replica takes an unpublished one with a conditional UPDATE (its claim), publishes it, and
marks it published. Another replica touches it only once the claim has lapsed, so with the
broker up a message goes out once whatever the number of replicas.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from control.db import CapMessage, Database, SirenTarget

__all__ = [
    "IN",
    "OUT",
    "claim",
    "delete",
    "find",
    "get",
    "insert",
    "list_messages",
    "mark_published",
    "now_ms",
    "release",
    "set_activation",
    "unpublished",
]

OUT, IN = "out", "in"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def insert(db: Database, values: dict[str, Any]) -> CapMessage | None:
    """Store a message; None if the same (direction, sender, identifier) is stored already."""
    row = CapMessage(created_ms=now_ms(), **values)
    try:
        async with db.session() as s, s.begin():
            s.add(row)
    except IntegrityError:
        return None
    return row


async def find(db: Database, direction: str, sender: str, identifier: str) -> CapMessage | None:
    query = select(CapMessage).where(
        CapMessage.direction == direction,
        CapMessage.sender == sender,
        CapMessage.identifier == identifier,
    )
    async with db.session() as s:
        return (await s.scalars(query)).one_or_none()


async def set_activation(db: Database, row_id: int, activation: str) -> None:
    async with db.session() as s, s.begin():
        await s.execute(
            update(CapMessage).where(CapMessage.id == row_id).values(activation=activation)
        )


async def delete(db: Database, row_id: int) -> None:
    async with db.session() as s, s.begin():
        row = await s.get(CapMessage, row_id)
        if row is not None:
            await s.delete(row)


async def unpublished(db: Database, now: int, limit: int = 100) -> list[int]:
    """Outbound messages not yet published and not claimed by a live claim, oldest first."""
    query = (
        select(CapMessage.id)
        .where(
            CapMessage.direction == OUT,
            CapMessage.published_ms.is_(None),
            or_(CapMessage.claim_until_ms.is_(None), CapMessage.claim_until_ms < now),
        )
        .order_by(CapMessage.created_ms, CapMessage.id)
        .limit(limit)
    )
    async with db.session() as s:
        return list(await s.scalars(query))


async def claim(db: Database, row_id: int, replica: str, until_ms: int) -> CapMessage | None:
    """Take an unpublished message until ``until_ms``; None if published or claimed already."""
    now = now_ms()
    async with db.session() as s, s.begin():
        taken = await s.execute(
            update(CapMessage)
            .where(
                CapMessage.id == row_id,
                CapMessage.published_ms.is_(None),
                or_(CapMessage.claim_until_ms.is_(None), CapMessage.claim_until_ms < now),
            )
            .values(claimed_by=replica[:128], claim_until_ms=until_ms)
        )
        if getattr(taken, "rowcount", 0) != 1:
            return None
        return await s.get(CapMessage, row_id)


async def release(db: Database, row_id: int, until_ms: int | None = None) -> None:
    """Give a claim back (or keep others off until ``until_ms``), after a failed publish."""
    async with db.session() as s, s.begin():
        await s.execute(
            update(CapMessage)
            .where(CapMessage.id == row_id, CapMessage.published_ms.is_(None))
            .values(claim_until_ms=until_ms)
        )


async def mark_published(db: Database, row_id: int, topic: str) -> bool:
    async with db.session() as s, s.begin():
        done = await s.execute(
            update(CapMessage)
            .where(CapMessage.id == row_id, CapMessage.published_ms.is_(None))
            .values(published_ms=now_ms(), topic=topic)
        )
        return getattr(done, "rowcount", 0) == 1


async def get(db: Database, identifier: str) -> CapMessage | None:
    """The message with this identifier: ours first, else an upstream one (newest)."""
    query = (
        select(CapMessage)
        .where(CapMessage.identifier == identifier)
        .order_by(CapMessage.direction.desc(), CapMessage.created_ms.desc())
        .limit(1)
    )
    async with db.session() as s:
        return (await s.scalars(query)).first()


async def list_messages(
    db: Database,
    *,
    activation: str | None = None,
    direction: str | None = None,
    msg_type: str | None = None,
    limit: int = 100,
    sites: frozenset[str] | None = None,
    schedules: Collection[str] | None = None,
) -> list[CapMessage]:
    """Newest first. ``sites`` (a caller's area): only messages of an activation with a
    target on one of them, or of one of ``schedules``; chosen in the query, so that the
    limit counts what is shown."""
    query = select(CapMessage)
    if sites is not None:
        of_activation = CapMessage.activation.in_(
            select(SirenTarget.activation_id).where(SirenTarget.site.in_(sorted(sites)))
        )
        of_schedule = and_(
            CapMessage.activation.is_(None), CapMessage.schedule.in_(sorted(schedules or ()))
        )
        query = query.where(or_(of_activation, of_schedule))
    if activation is not None:
        query = query.where(CapMessage.activation == activation)
    if direction is not None:
        query = query.where(CapMessage.direction == direction)
    if msg_type is not None:
        query = query.where(CapMessage.msg_type == msg_type)
    query = query.order_by(CapMessage.created_ms.desc(), CapMessage.id.desc()).limit(limit)
    async with db.session() as s:
        return list(await s.scalars(query))
