"""Reading the audit trail back: pages, a stream in ``seq`` order, the head, verification.

Long reads go in keyset chunks (``seq > last ORDER BY seq LIMIT n``), each its own short
query: a chain of millions of rows streams in constant memory, holds no transaction open
for the whole read, and appends that land meanwhile only extend the tail being read.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from sqlalchemy import select

from control.audit.chain import AuditRecord, ChainVerifier, Head, VerifyResult
from control.db import AuditEntry, Database

__all__ = ["iter_records", "read_head", "read_page", "verify_database"]

CHUNK = 1000

_COLUMNS = (
    AuditEntry.seq,
    AuditEntry.ts_ms,
    AuditEntry.actor,
    AuditEntry.action,
    AuditEntry.target,
    AuditEntry.params,
    AuditEntry.result,
    AuditEntry.prev_hash,
    AuditEntry.hash,
)


async def read_page(db: Database, *, after_seq: int | None, limit: int) -> list[AuditRecord]:
    """``limit`` rows after ``after_seq`` in ``seq`` order; with no ``after_seq``, the last
    ``limit`` rows (still in ``seq`` order)."""
    async with db.engine.connect() as conn:
        if after_seq is not None:
            query = (
                select(*_COLUMNS)
                .where(AuditEntry.seq > after_seq)
                .order_by(AuditEntry.seq)
                .limit(limit)
            )
            rows = (await conn.execute(query)).all()
        else:
            query = select(*_COLUMNS).order_by(AuditEntry.seq.desc()).limit(limit)
            rows = list(reversed((await conn.execute(query)).all()))
    return [AuditRecord(*row) for row in rows]


async def iter_records(
    db: Database, *, after_seq: int = 0, chunk: int = CHUNK
) -> AsyncGenerator[AuditRecord]:
    """Every row after ``after_seq`` in ``seq`` order, read ``chunk`` rows at a time."""
    while True:
        page = await read_page(db, after_seq=after_seq, limit=chunk)
        for record in page:
            yield record
        if len(page) < chunk:
            return
        after_seq = page[-1].seq


async def read_head(db: Database) -> Head | None:
    """The last row's (seq, hash), None for an empty trail: what to record to anchor it."""
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
            )
        ).first()
    return Head(row[0], row[1]) if row is not None else None


async def verify_database(
    db: Database, *, expect_head: Head | None = None, chunk: int = CHUNK
) -> VerifyResult:
    """Verify the whole stored chain (see ChainVerifier), streaming it in chunks."""
    verifier = ChainVerifier(expect_head)
    # aclosing: stopping at the first bad row must close the generator here, not at GC.
    async with aclosing(iter_records(db, chunk=chunk)) as records:
        async for record in records:
            if not verifier.feed(record):
                break
    return verifier.finish()
