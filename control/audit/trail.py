"""Appending to the audit trail: one row per call, serialised across tasks and replicas.

Each append reads the last row and writes the next inside one transaction that holds the
chain's single write lock, so ``seq = last + 1`` and ``prev_hash = last hash`` can never be
read by two writers at once:

- SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock before the read (a deferred
  ``BEGIN`` would let two connections read the same head and one fail on the insert);
- PostgreSQL: ``pg_advisory_xact_lock`` on one constant key, held until commit. The read
  that follows it runs under READ COMMITTED, so it sees the row the previous holder committed.

The primary key on ``seq`` stays as a backstop: a broken lock would fail loudly, not fork.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from control.audit.chain import GENESIS_HASH, canonical_params, clean_text, row_hash
from control.db import AuditEntry, Database

__all__ = ["ADVISORY_LOCK_KEY", "AuditRow", "append_audit", "append_audits"]

# pg_advisory_xact_lock key of the audit chain (any constant other code does not use):
# the first 8 bytes of SHA-256("shelterwatch.audit_log"), as a signed BIGINT.
ADVISORY_LOCK_KEY = -0x17E9_34C3_81E6_08DE

# Column widths of AuditEntry: PostgreSQL refuses longer text, so it is cut *before* hashing
# (what is stored is exactly what is hashed).
_WIDTHS = {"actor": 128, "action": 128, "target": 256, "result": 256}


async def append_audit(
    db: Database,
    *,
    actor: str,
    action: str,
    target: str = "",
    params: Mapping[str, object] | None = None,
    result: str = "",
) -> AuditEntry:
    """Append one row, in its own transaction, serialised against concurrent appends.

    Call it outside any open write transaction of your own on SQLite: that transaction would
    hold the write lock this one waits for.
    """
    row = AuditRow(actor=actor, action=action, target=target, params=params, result=result)
    return (await append_audits(db, [row]))[0]


@dataclass(frozen=True, slots=True)
class AuditRow:
    actor: str
    action: str
    target: str = ""
    params: Mapping[str, object] | None = None
    result: str = ""


async def append_audits(db: Database, rows: Sequence[AuditRow]) -> list[AuditEntry]:
    """Append several rows, consecutive in the chain, in one transaction (all or none).

    One lock and one commit for what happens together, such as the commands of a fan-out
    to fifty gateways, instead of fifty turns at the chain's lock.
    """
    entries: list[AuditEntry] = []
    if not rows:
        return entries
    async with _serialised(db) as conn:
        last = (
            await conn.execute(
                select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
            )
        ).first()
        seq, prev_hash = (last[0], last[1]) if last is not None else (0, GENESIS_HASH)
        # Taken under the lock, so times follow seq on one clock (replicas' clocks may differ).
        ts_ms = int(time.time() * 1000)
        for row in rows:
            seq += 1
            entry = AuditEntry(
                seq=seq,
                ts_ms=ts_ms,
                prev_hash=prev_hash,
                hash="",
                actor=_fit(row.actor, "actor"),
                action=_fit(row.action, "action"),
                target=_fit(row.target, "target"),
                params=canonical_params(row.params),
                result=_fit(row.result, "result"),
            )
            entry.hash = row_hash(entry)
            prev_hash = entry.hash
            entries.append(entry)
        await conn.execute(
            insert(AuditEntry),
            [
                {
                    "seq": e.seq,
                    "ts_ms": e.ts_ms,
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "params": e.params,
                    "result": e.result,
                    "prev_hash": e.prev_hash,
                    "hash": e.hash,
                }
                for e in entries
            ],
        )
    return entries


@asynccontextmanager
async def _serialised(db: Database) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that holds the audit chain's write lock; commits on
    success, rolls back on error."""
    if db.backend == "sqlite":
        # The driver's own transaction handling would open a deferred transaction; with it
        # switched off (AUTOCOMMIT) this connection says BEGIN IMMEDIATE itself.
        async with db.engine.connect() as base:
            conn = await base.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                await conn.exec_driver_sql("ROLLBACK")
                raise
            await conn.exec_driver_sql("COMMIT")
        return
    async with db.engine.connect() as base:
        conn = await base.execution_options(isolation_level="READ COMMITTED")
        async with conn.begin():
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
            yield conn


def _fit(value: str, column: str) -> str:
    return clean_text(value)[: _WIDTHS[column]]
