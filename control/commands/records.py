"""Command records in the control database: create, publish bookkeeping, answers, sweeps.

Every function runs in its own transaction. The database, not the process, knows which
commands still wait to be published (``pending`` without a ``sent`` event), so a command
submitted while the broker is down survives a restart of the control service, and any
replica can publish it.

Replicas publish one pass at a time (``publishing``): each takes the same advisory lock and,
under it, reads again which of its candidates are still unsent. Two replicas that reconnect
together both find a command that waited out an outage; without the lock both would publish
it (the gateway would refuse the copy as a replay, but it is a second message all the same).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import Exists, exists, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from control.commands.states import (
    FINAL,
    OPEN,
    SENT_EVENT,
    SUBMITTED_EVENT,
    RecordState,
    next_state,
)
from control.db import CommandEvent, CommandRecord, Database
from shelterwatch.contract import SIREN_ACTIVATE, CommandAck, CommandRequest, SirenOrder, Value

__all__ = [
    "PUBLISH_LOCK_KEY",
    "UNKNOWN_ACTOR",
    "Outcome",
    "create",
    "create_many",
    "existing_ids",
    "get",
    "is_final",
    "list_records",
    "mark_final",
    "mark_sent",
    "now_ms",
    "publishing",
    "record_answer",
    "request_of",
    "sweep",
    "unsent",
    "withdraw",
]

# The actor of a record made from an answer to a command this service never sent: most often
# a forged command that someone published straight to the broker and the gateway refused.
UNKNOWN_ACTOR = "unknown (not sent by this service)"

# pg_advisory_xact_lock key of command publication (the audit chain's is another constant):
# the first 8 bytes of SHA-256("shelterwatch.command_publish"), as a signed BIGINT.
PUBLISH_LOCK_KEY = 0x0F48_D8E2_DD9C_ED6B


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _canonical(params: dict[str, Value]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One answer (or verdict) written to a record: what to audit and log."""

    record: CommandRecord
    state: str
    detail: str
    moved: bool  # the record's state changed
    unknown: bool = False  # the record was created for an id this service never sent


def request_of(record: CommandRecord) -> CommandRequest:
    """The unsigned envelope of a record; signing it again gives the same signature."""
    siren = None
    if record.action == SIREN_ACTIVATE and record.siren is not None:
        siren = SirenOrder.model_validate_json(record.siren)
    return CommandRequest(
        id=record.id,
        # Siren commands name no single device: their order lists the sirens.
        device=record.device or None,
        action=record.action,
        params=json.loads(record.params),
        siren=siren,
        ts=record.ts_ms,
        expires=record.expires_ms,
        actor=record.actor,
    )


async def create(db: Database, gateway: str, command: CommandRequest) -> CommandRecord:
    """Write a new record; raises IntegrityError if the id exists already."""
    return (await create_many(db, [(gateway, command)]))[0]


async def create_many(
    db: Database, commands: list[tuple[str, CommandRequest]]
) -> list[CommandRecord]:
    """Write new records in one transaction; raises IntegrityError if any id exists."""
    made = [_record(gateway, command) for gateway, command in commands]
    async with db.session() as s, s.begin():
        s.add_all(made)
    return made


async def existing_ids(db: Database, ids: list[str]) -> set[str]:
    async with db.session() as s:
        query = select(CommandRecord.id).where(CommandRecord.id.in_(ids))
        return set(await s.scalars(query))


def _record(gateway: str, command: CommandRequest) -> CommandRecord:
    submitted = CommandEvent(
        state=SUBMITTED_EVENT,
        detail=f"submitted by {command.actor}, valid for "
        f"{(command.expires - command.ts) / 1000:g} s",
        ts_ms=command.ts,
    )
    record = CommandRecord(
        id=command.id,
        gateway=gateway,
        device=command.device or "",
        action=command.action,
        params=_canonical(dict(command.params)),
        actor=command.actor,
        ts_ms=command.ts,
        expires_ms=command.expires,
        state=RecordState.PENDING.value,
        detail="",
        updated_ms=command.ts,
        siren=command.siren.to_json().decode() if command.siren is not None else None,
        events=[submitted],
    )
    return record


def _sent() -> Exists:
    return exists().where(
        CommandEvent.command_id == CommandRecord.id, CommandEvent.state == SENT_EVENT
    )


async def unsent(
    db: Database,
    *,
    ids: Collection[str] | None = None,
    submitted_before_ms: int | None = None,
    limit: int = 500,
) -> list[CommandRecord]:
    """Pending commands not yet published, oldest first: these ``ids``, or all of them
    submitted before ``submitted_before_ms``."""
    query = select(CommandRecord).where(CommandRecord.state == RecordState.PENDING.value, ~_sent())
    if ids is not None:
        query = query.where(CommandRecord.id.in_(list(ids)))
    if submitted_before_ms is not None:
        query = query.where(CommandRecord.ts_ms < submitted_before_ms)
    async with db.session() as s:
        rows = await s.scalars(query.order_by(CommandRecord.ts_ms).limit(limit))
        return list(rows)


@asynccontextmanager
async def publishing(db: Database) -> AsyncIterator[None]:
    """Held while a replica publishes a pass of commands and records their ``sent`` events:
    the replicas' passes take turns. Read what is still unsent *inside* it (``unsent``).

    PostgreSQL: a transaction-scoped advisory lock on its own connection, released by the
    commit at the end (or by the rollback, or the connection's end, if the replica dies). It
    guards no row, so answers, sweeps and the audit chain never wait for it. SQLite: nothing
    (one process; its publisher is one task).
    """
    if db.backend == "sqlite":
        yield
        return
    async with db.engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PUBLISH_LOCK_KEY})
        yield


async def _locked(db: Database, s: AsyncSession, command_id: str) -> CommandRecord | None:
    # FOR UPDATE serialises replicas (PostgreSQL) that handle answers to the same command;
    # SQLite ignores it, so the write lock is taken before the read (Database.write_lock).
    await db.write_lock(s, CommandRecord)
    query = (
        select(CommandRecord)
        .where(CommandRecord.id == command_id)
        .options(selectinload(CommandRecord.events))
        .with_for_update()
    )
    return (await s.scalars(query)).one_or_none()


def _add_event(
    record: CommandRecord, state: str, detail: str, ts_ms: int, now: int, *, move: bool
) -> None:
    record.events.append(CommandEvent(state=state, detail=detail, ts_ms=ts_ms))
    if move:
        record.state = state
        record.detail = detail
    record.updated_ms = now


async def mark_sent(
    db: Database, command_id: str, topic: str, published_ms: int | None = None
) -> CommandRecord | None:
    """Record the publication once the broker's PUBACK came; None if it was recorded already.

    ``published_ms`` is when it was handed to the broker: a gateway can answer before the
    PUBACK is back, and a siren must never seem to start before its command was sent.
    """
    now = now_ms()
    async with db.session() as s, s.begin():
        record = await _locked(db, s, command_id)
        if record is None or any(e.state == SENT_EVENT for e in record.events):
            return None
        sent = published_ms or now
        _add_event(record, SENT_EVENT, f"published to {topic}", sent, now, move=False)
        return record


async def mark_final(
    db: Database, command_id: str, state: RecordState, detail: str
) -> Outcome | None:
    """The service's own final verdict on an open command (expired unsent, refused publish)."""
    now = now_ms()
    async with db.session() as s, s.begin():
        record = await _locked(db, s, command_id)
        if record is None or RecordState(record.state) not in OPEN:
            return None
        _add_event(record, state.value, detail, now, now, move=True)
        return Outcome(record, state.value, detail, moved=True)


async def withdraw(db: Database, command_id: str, detail: str) -> Outcome | None:
    """Cancel a command that was never published (its activation was cancelled first);
    None if it was published already, or is no longer pending."""
    now = now_ms()
    async with db.session() as s, s.begin():
        record = await _locked(db, s, command_id)
        if record is None or record.state != RecordState.PENDING.value:
            return None
        if any(e.state == SENT_EVENT for e in record.events):
            return None
        state = RecordState.CANCELLED
        _add_event(record, state.value, detail, now, now, move=True)
        return Outcome(record, state.value, detail, moved=True)


async def record_answer(db: Database, gateway: str, ack: CommandAck) -> Outcome | None:
    """Write a gateway's answer; None when the same answer was recorded before (QoS 1
    duplicates, or another replica got there first).

    A per-siren answer (``device`` set) is kept as an event of its command, named by the
    siren, but does not move the command's state: one siren's outcome is not the command's.
    """
    now = now_ms()
    answer = RecordState(ack.state.value)
    detail = ack.detail
    if ack.device is not None:
        said = ack.outcome.value if ack.outcome is not None else ack.state.value
        detail = f"{ack.device}: {said}: {ack.detail}" if ack.detail else f"{ack.device}: {said}"
    try:
        async with db.session() as s, s.begin():
            record = await _locked(db, s, ack.id)
            if record is None:
                record = CommandRecord(
                    id=ack.id,
                    gateway=gateway,
                    device="",
                    action="",
                    params="{}",
                    actor=UNKNOWN_ACTOR,
                    ts_ms=ack.ts,
                    expires_ms=ack.ts,
                    state=answer.value,
                    detail=detail,
                    updated_ms=now,
                    events=[CommandEvent(state=answer.value, detail=detail, ts_ms=ack.ts)],
                )
                s.add(record)
                return Outcome(record, answer.value, detail, moved=True, unknown=True)
            if any(
                (e.state, e.detail, e.ts_ms) == (answer.value, detail, ack.ts)
                for e in record.events
            ):
                return None
            target = None if ack.device else next_state(RecordState(record.state), answer)
            _add_event(record, answer.value, detail, ack.ts, now, move=target is not None)
            return Outcome(record, answer.value, detail, moved=target is not None)
    except IntegrityError:
        return None  # another replica created the unknown record at the same moment


async def sweep(db: Database, grace_ms: int, limit: int = 500) -> list[Outcome]:
    """Close what can no longer end by itself: a command never published before its expiry
    is ``expired``; a published one with no final answer by expiry + grace is ``timed_out``."""
    now = now_ms()
    async with db.session() as s:
        due = await s.scalars(
            select(CommandRecord.id)
            .where(
                CommandRecord.state.in_([st.value for st in OPEN]),
                or_(
                    CommandRecord.expires_ms < now - grace_ms,
                    (CommandRecord.state == RecordState.PENDING.value)
                    & (CommandRecord.expires_ms < now)
                    & ~_sent(),
                ),
            )
            .order_by(CommandRecord.expires_ms)
            .limit(limit)
        )
        candidates = list(due)
    outcomes = []
    for command_id in candidates:
        async with db.session() as s, s.begin():
            record = await _locked(db, s, command_id)
            if record is None or RecordState(record.state) not in OPEN:
                continue
            sent = any(e.state == SENT_EVENT for e in record.events)
            if not sent and record.state == RecordState.PENDING.value:
                state = RecordState.EXPIRED
                detail = "expired before it could be published (MQTT broker unreachable)"
            elif record.expires_ms + grace_ms < now:
                state = RecordState.TIMED_OUT
                last = record.state
                detail = (
                    f"no final answer from {record.gateway} by expiry + {grace_ms / 1000:g} s "
                    f"(last known state: {last})"
                )
            else:
                continue
            _add_event(record, state.value, detail, now, now, move=True)
            outcomes.append(Outcome(record, state.value, detail, moved=True))
    return outcomes


async def get(db: Database, command_id: str) -> CommandRecord | None:
    async with db.session() as s:
        query = (
            select(CommandRecord)
            .where(CommandRecord.id == command_id)
            .options(selectinload(CommandRecord.events))
        )
        return (await s.scalars(query)).one_or_none()


async def list_records(
    db: Database, gateway: str | None, limit: int, gateways: Collection[str] | None = None
) -> list[CommandRecord]:
    """The newest commands first, optionally of one gateway, and only of ``gateways`` unless
    it is None (a caller's scope, in SQL so that ``limit`` counts only what they may see)."""
    query = select(CommandRecord)
    if gateway is not None:
        query = query.where(CommandRecord.gateway == gateway)
    if gateways is not None:
        query = query.where(CommandRecord.gateway.in_(gateways))
    async with db.session() as s:
        rows = await s.scalars(query.order_by(CommandRecord.ts_ms.desc()).limit(limit))
        return list(rows)


def is_final(record: CommandRecord) -> bool:
    return RecordState(record.state) in FINAL
