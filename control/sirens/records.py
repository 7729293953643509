"""Activations and their targets in the control database.

Every change to an activation, or to one of its targets, happens in a transaction that
holds the activation's row lock (``locked``): approvals, per-siren answers from several
gateways, the sweep and a cancel on another replica take turns, so a decision is made once.
The audit trail is written after each such transaction commits (it takes its own lock, and
on SQLite an open write transaction would hold the lock it waits for).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from control.db import (
    CommandEvent,
    CommandRecord,
    Database,
    SirenActivation,
    SirenActivationEvent,
    SirenPost,
    SirenTarget,
)
from control.sirens.activations import ActivationState
from control.sirens.errors import NotFound
from control.sirens.inventory import now_ms
from control.sirens.outcomes import FINAL_TARGET, TargetState

__all__ = [
    "activation_of_command",
    "add_event",
    "due_activations",
    "get",
    "list_activations",
    "locked",
    "note_last_test",
    "now_ms",
    "open_count",
    "open_targets",
    "requested_targets",
    "sent_times",
    "state_of",
    "target_sites",
]

_OPEN = [ActivationState.PENDING_APPROVAL, ActivationState.ACTIVE, ActivationState.CANCELLING]


def _full() -> tuple[object, ...]:
    return (selectinload(SirenActivation.targets), selectinload(SirenActivation.events))


@asynccontextmanager
async def locked(
    db: Database, activation_id: str
) -> AsyncIterator[tuple[AsyncSession, SirenActivation]]:
    """The activation with its targets and events, row-locked, in a transaction that
    commits when the block ends (and rolls back if it raises)."""
    async with db.session() as s, s.begin():
        await db.write_lock(s, SirenActivation)
        query = (
            select(SirenActivation)
            .where(SirenActivation.id == activation_id)
            .options(*_full())  # type: ignore[arg-type]
            .with_for_update()
        )
        activation = (await s.scalars(query)).one_or_none()
        if activation is None:
            raise NotFound(f"no activation {activation_id!r}")
        yield s, activation


def add_event(activation: SirenActivation, now: int, actor: str, event: str, detail: str) -> None:
    activation.events.append(
        SirenActivationEvent(ts_ms=now, actor=actor[:128], event=event, detail=detail)
    )
    activation.updated_ms = now


async def get(db: Database, activation_id: str) -> SirenActivation:
    async with db.session() as s:
        query = (
            select(SirenActivation).where(SirenActivation.id == activation_id).options(*_full())  # type: ignore[arg-type]
        )
        activation = (await s.scalars(query)).one_or_none()
    if activation is None:
        raise NotFound(f"no activation {activation_id!r}")
    return activation


async def list_activations(
    db: Database,
    *,
    state: str | None,
    kind: str | None,
    schedule: str | None,
    siren: str | None,
    limit: int,
    sites: frozenset[str] | None = None,
) -> list[SirenActivation]:
    """The newest first, with their targets (for the counts). ``sites``: only those with a
    target on one of them (a caller's area), chosen in the query so the limit counts them."""
    query = select(SirenActivation).options(selectinload(SirenActivation.targets))
    if state is not None:
        query = query.where(SirenActivation.state == state)
    if kind is not None:
        query = query.where(SirenActivation.kind == kind)
    if schedule is not None:
        query = query.where(SirenActivation.schedule == schedule)
    if siren is not None:
        query = query.where(
            SirenActivation.id.in_(
                select(SirenTarget.activation_id).where(SirenTarget.siren == siren)
            )
        )
    if sites is not None:
        query = query.where(
            SirenActivation.id.in_(
                select(SirenTarget.activation_id).where(SirenTarget.site.in_(sorted(sites)))
            )
        )
    query = query.order_by(SirenActivation.requested_ms.desc(), SirenActivation.id).limit(limit)
    async with db.session() as s:
        return list(await s.scalars(query))


async def target_sites(db: Database, activation_id: str) -> list[str] | None:
    """The sites of an activation's targets; None when there is no such activation."""
    async with db.session() as s:
        rows = list(
            await s.scalars(
                select(SirenTarget.site).where(SirenTarget.activation_id == activation_id)
            )
        )
    return rows or None


async def activation_of_command(db: Database, command_id: str) -> str | None:
    async with db.session() as s:
        query = select(SirenTarget.activation_id).where(SirenTarget.command_id == command_id)
        return (await s.scalars(query.limit(1))).first()


async def due_activations(db: Database, limit: int = 200) -> list[str]:
    """Open activations, oldest first: the sweep looks at each."""
    query = (
        select(SirenActivation.id)
        .where(SirenActivation.state.in_([s.value for s in _OPEN]))
        .order_by(SirenActivation.requested_ms)
        .limit(limit)
    )
    async with db.session() as s:
        return list(await s.scalars(query))


async def sent_times(s: AsyncSession, command_ids: list[str]) -> dict[str, tuple[str, int | None]]:
    """Each command's state and the time the broker took it (None: not yet)."""
    if not command_ids:
        return {}
    rows = await s.execute(
        select(CommandRecord.id, CommandRecord.state).where(CommandRecord.id.in_(command_ids))
    )
    states = {row.id: row.state for row in rows}
    sent = await s.execute(
        select(CommandEvent.command_id, CommandEvent.ts_ms).where(
            CommandEvent.command_id.in_(command_ids), CommandEvent.state == "sent"
        )
    )
    times = {row.command_id: row.ts_ms for row in sent}
    return {cid: (state, times.get(cid)) for cid, state in states.items()}


async def open_count(s: AsyncSession, activation_id: str) -> int:
    """How many of the activation's targets have no final outcome yet."""
    query = select(func.count()).where(
        SirenTarget.activation_id == activation_id,
        SirenTarget.state.not_in([t.value for t in FINAL_TARGET]),
    )
    return int(await s.scalar(query) or 0)


async def state_of(db: Database, activation_id: str) -> str:
    """The activation's state alone (get() loads every target)."""
    async with db.session() as s:
        query = select(SirenActivation.state).where(SirenActivation.id == activation_id)
        state = (await s.scalars(query)).one_or_none()
    if state is None:
        raise NotFound(f"no activation {activation_id!r}")
    return state


def open_targets(activation: SirenActivation) -> list[SirenTarget]:
    return [t for t in activation.targets if TargetState(t.state) not in FINAL_TARGET]


async def note_last_test(s: AsyncSession, target: SirenTarget, activation_id: str) -> None:
    """A silent test's final outcome becomes the siren's last test, if it is the newest."""
    if target.state == TargetState.CANCELLED.value or target.finished_ms is None:
        return
    post = await s.get(SirenPost, target.siren, with_for_update=True)
    if post is None:
        return  # deleted since
    if post.last_test_ms is None or post.last_test_ms <= target.finished_ms:
        post.last_test_outcome = target.state
        post.last_test_detail = target.detail
        post.last_test_ms = target.finished_ms
        post.last_test_activation = activation_id


def requested_targets(activation: SirenActivation) -> tuple[list[str], list[str]]:
    doc = json.loads(activation.requested_targets or "{}")
    return list(doc.get("sirens", [])), list(doc.get("groups", []))
