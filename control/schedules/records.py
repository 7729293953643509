"""Schedule rows and run rows in the control database. Each function is one transaction.

The claim of a step is an INSERT under the unique key (schedule_id, run_ts, step): on
PostgreSQL a second replica's insert waits for the first to commit and then fails; on SQLite
the write lock orders them. Whichever insert commits owns the step; nobody updates a claim
into existence, so no step is fired twice.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from control.db import Database
from control.db.schedule_models import ScheduleRecord, ScheduleRun
from control.schedules.errors import ScheduleExists
from control.schedules.spec import ScheduleFields, Step

__all__ = [
    "CLAIMED",
    "FAILED",
    "FIRED",
    "MISSED",
    "claim",
    "claimed_keys",
    "delete_if",
    "enabled",
    "fields_of",
    "finish",
    "get",
    "insert",
    "list_all",
    "runs_of",
    "stored",
    "update_if",
]

CLAIMED, FIRED, FAILED, MISSED = "claimed", "fired", "failed", "missed"


def fields_of(record: ScheduleRecord) -> ScheduleFields:
    """The schedule as it was written, from its row."""
    return ScheduleFields(
        title=record.title,
        enabled=record.enabled,
        timezone=record.timezone,
        rule=record.rule,
        starts=date.fromisoformat(record.starts),
        sirens=json.loads(record.sirens),
        groups=json.loads(record.groups),
        programme=[Step.model_validate(s) for s in json.loads(record.programme)],
        template=record.template,
    )


def stored(record: ScheduleRecord) -> dict[str, Any]:
    """What the audit trail shows of a schedule (before and after a change)."""
    return {
        "title": record.title,
        "enabled": record.enabled,
        "timezone": record.timezone,
        "rule": record.rule,
        "starts": record.starts,
        "sirens": json.loads(record.sirens),
        "groups": json.loads(record.groups),
        "programme": json.loads(record.programme),
        "template": record.template,
    }


async def get(db: Database, name: str) -> ScheduleRecord | None:
    async with db.session() as s:
        return (
            await s.execute(select(ScheduleRecord).where(ScheduleRecord.name == name))
        ).scalar_one_or_none()


async def list_all(db: Database) -> list[ScheduleRecord]:
    async with db.session() as s:
        return list(
            (await s.execute(select(ScheduleRecord).order_by(ScheduleRecord.name))).scalars()
        )


async def enabled(db: Database) -> list[ScheduleRecord]:
    async with db.session() as s:
        query = select(ScheduleRecord).where(ScheduleRecord.enabled.is_(True))
        return list((await s.execute(query.order_by(ScheduleRecord.id))).scalars())


async def insert(db: Database, values: dict[str, Any]) -> ScheduleRecord:
    record = ScheduleRecord(**values)
    async with db.session() as s:
        s.add(record)
        try:
            await s.commit()
        except IntegrityError as exc:
            raise ScheduleExists(f"a schedule named {values['name']} exists") from exc
    return record


async def update_if(
    db: Database, name: str, revision: int, values: dict[str, Any]
) -> ScheduleRecord | None:
    """Write ``values`` over the row if it is still at ``revision``; None if it moved on."""
    async with db.session() as s:
        result = await s.execute(
            update(ScheduleRecord)
            .where(ScheduleRecord.name == name, ScheduleRecord.revision == revision)
            .values(**values, revision=revision + 1)
        )
        await s.commit()
    if getattr(result, "rowcount", 0) != 1:
        return None
    return await get(db, name)


async def delete_if(db: Database, name: str, revision: int) -> bool:
    async with db.session() as s:
        result = await s.execute(
            delete(ScheduleRecord).where(
                ScheduleRecord.name == name, ScheduleRecord.revision == revision
            )
        )
        await s.commit()
    return bool(getattr(result, "rowcount", 0) == 1)


async def claimed_keys(db: Database, schedule_id: int, since_run_ts: int) -> set[tuple[int, int]]:
    """The (run_ts, step) already claimed by any replica, for runs from ``since_run_ts``."""
    async with db.session() as s:
        rows = await s.execute(
            select(ScheduleRun.run_ts, ScheduleRun.step).where(
                ScheduleRun.schedule_id == schedule_id, ScheduleRun.run_ts >= since_run_ts
            )
        )
        return {(run_ts, step) for run_ts, step in rows}


async def claim(db: Database, values: dict[str, Any]) -> ScheduleRun | None:
    """Insert the step's row; None when another replica's row for it committed first."""
    run = ScheduleRun(**values)
    async with db.session() as s:
        s.add(run)
        try:
            await s.commit()
        except IntegrityError:
            return None
    return run


async def finish(
    db: Database, run_id: int, state: str, activation: str | None, detail: str, ts: int
) -> None:
    async with db.session() as s:
        await s.execute(
            update(ScheduleRun)
            .where(ScheduleRun.id == run_id)
            .values(state=state, activation=activation, detail=detail, updated_ts=ts)
        )
        await s.commit()


async def runs_of(
    db: Database, name: str, *, limit: int = 100, state: str | None = None
) -> list[ScheduleRun]:
    """The newest runs first, step by step."""
    query = select(ScheduleRun).where(ScheduleRun.schedule == name)
    if state is not None:
        query = query.where(ScheduleRun.state == state)
    query = query.order_by(ScheduleRun.run_ts.desc(), ScheduleRun.step.asc()).limit(limit)
    async with db.session() as s:
        return list((await s.execute(query)).scalars())
