"""The gateway's durable outbox: every data message is stored here before it is published.

A message leaves the outbox only when the broker has acknowledged it (PUBACK). While the uplink
is down the outbox fills; it is bounded by count, bytes and age, and when it must drop it drops
the oldest and counts the drop persistently. ``seq`` is assigned here and stored with the
message, so it keeps counting across gateway restarts.

SQLite in WAL mode, one connection used from one worker thread. ``synchronous`` is NORMAL by
default: a commit survives a crash of the gateway process; on a power cut the last commits
before the cut may be lost but the file stays consistent. FULL (an fsync per commit) closes that
window at the cost of flash wear and latency on small boxes.

When the outbox cannot write (the disk is full, the file system went read-only), the gateway
does not stop: the message is kept in memory instead (at most ``_MEMORY_MAX`` messages), so live
data is still published while the broker is up, and the error is logged once at ERROR. Past
that bound the oldest messages held in memory are dropped and counted like any other drop. The
next write tries the disk again; when it works, that is logged once. SQLite's journal keeps the
file consistent through the failed writes; nothing is half-written.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shelterwatch.errors import ShelterwatchError

__all__ = ["Outbox", "OutboxError", "OutboxSettings", "OutboxStats", "Row"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Messages kept in memory while the disk refuses writes: a few minutes of a site's data.
_MEMORY_MAX = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class OutboxError(ShelterwatchError):
    pass


class OutboxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Default: data/<gateway_id>-outbox.db
    path: Path | None = None
    max_messages: Annotated[int, Field(ge=100)] = 1_000_000
    max_bytes: Annotated[int, Field(ge=1_000_000)] = 512 * 1024 * 1024
    max_age_s: Annotated[float, Field(gt=0)] = 7 * 86_400.0
    # Replayed (historical) messages per second after an outage; live data always goes first.
    replay_per_s: Annotated[float, Field(gt=0)] = 500.0
    synchronous: Literal["normal", "full"] = "normal"


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    topic: str
    payload: bytes
    created_ms: int


@dataclass(slots=True)
class OutboxStats:
    depth: int
    bytes: int
    dropped: int
    oldest_ms: int | None


class Outbox:
    def __init__(self, path: Path, settings: OutboxSettings) -> None:
        self.path = path
        self.settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._db: sqlite3.Connection | None = None
        self.next_seq = 0
        self.depth = 0
        self.bytes = 0
        self.dropped = 0
        # Messages the disk refused, held until published (insertion order is seq order).
        self._memory: dict[int, Row] = {}
        self.write_errors = 0  # appends the disk refused (counted, logged once per episode)
        self._disk_failing = False
        self._unsaved_drops = False  # drops counted while the disk refused writes

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._run(self._open)
        if self.depth:
            log.info(
                "outbox %s holds %d messages from before the restart; they will be replayed",
                self.path,
                self.depth,
            )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._run(self._close)
        finally:
            self._executor.shutdown(wait=True)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.settings.synchronous.upper()}")
            db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(
                f"cannot open the outbox {self.path}: {exc}; check that the directory is "
                "writable and the disk is not full"
            ) from exc
        self._db = db
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        top = db.execute(
            "SELECT max(seq), count(*), coalesce(sum(length(payload)), 0) FROM outbox"
        ).fetchone()
        self.next_seq = max(meta.get("next_seq", 0), (top[0] if top[0] is not None else -1) + 1)
        self.depth, self.bytes = int(top[1]), int(top[2])
        self.dropped = int(meta.get("dropped", 0))

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxError("the outbox is not open")
        return self._db

    # -- operations -----------------------------------------------------------------------------

    async def append(self, topic: str, build: Callable[[int], bytes], now_ms: int) -> int:
        """Store one message; ``build(seq)`` makes its payload. Returns the seq."""
        seq = self.next_seq
        self.next_seq += 1
        payload = build(seq)
        try:
            await self._run(lambda: self._append(seq, topic, payload, now_ms))
        except (OSError, sqlite3.Error) as exc:
            self._hold_in_memory(Row(seq, topic, payload, now_ms), exc)
            return seq
        if self._disk_failing:
            self._disk_failing = False
            log.info(
                "outbox %s: writes work again; %d messages still held in memory",
                self.path,
                len(self._memory),
            )
        return seq

    def _hold_in_memory(self, row: Row, exc: Exception) -> None:
        self.write_errors += 1
        if not self._disk_failing:
            self._disk_failing = True
            log.error(
                "outbox %s: cannot write (%s). Is the disk full? New messages are held in "
                "memory (up to %d) and published from there; while the broker is away the "
                "oldest of them are dropped and counted. Free space on the outbox's disk",
                self.path,
                exc,
                _MEMORY_MAX,
            )
        self._memory[row.seq] = row
        self.depth += 1
        self.bytes += len(row.payload)
        if len(self._memory) > _MEMORY_MAX:
            oldest = next(iter(self._memory))
            gone = self._memory.pop(oldest)
            self._unsaved_drops = True
            self._dropped(1, len(gone.payload), "the disk refuses writes and memory is full")

    def _append(self, seq: int, topic: str, payload: bytes, now_ms: int) -> None:
        db = self._conn()
        s = self.settings
        depth, size = self.depth + 1, self.bytes + len(payload)
        dropped = (0, 0)
        with _transaction(db):
            db.execute(
                "INSERT INTO outbox (seq, topic, payload, created_ms) VALUES (?, ?, ?, ?)",
                (seq, topic, payload, now_ms),
            )
            _set_meta(db, "next_seq", seq + 1)
            if self._unsaved_drops:
                _set_meta(db, "dropped", self.dropped)
            if depth > s.max_messages or size > s.max_bytes:
                dropped = self._drop_oldest(db, depth - s.max_messages, size - s.max_bytes)
        # Counters change only once the transaction is committed.
        self.depth, self.bytes = depth, size
        self._unsaved_drops = False
        if dropped[0]:
            self._dropped(dropped[0], dropped[1], "the outbox is full")

    def _drop_oldest(
        self, db: sqlite3.Connection, excess_count: int, excess_bytes: int
    ) -> tuple[int, int]:
        # Free a tenth of the byte budget at once, so a full outbox does not delete on every
        # append; by count, drop just the excess.
        byte_target = excess_bytes + self.settings.max_bytes // 10 if excess_bytes > 0 else 0
        n = size = 0
        last = None
        for seq, length in db.execute("SELECT seq, length(payload) FROM outbox ORDER BY seq"):
            if n >= excess_count and size >= byte_target:
                break
            n, size, last = n + 1, size + length, seq
        if last is None:
            return 0, 0
        db.execute("DELETE FROM outbox WHERE seq <= ?", (last,))
        _set_meta(db, "dropped", self.dropped + n)
        return n, size

    def _dropped(self, n: int, size: int, why: str) -> None:
        self.depth -= n
        self.bytes -= size
        self.dropped += n
        log.warning(
            "outbox %s: dropped the %d oldest messages (%s); %d dropped in total",
            self.path,
            n,
            why,
            self.dropped,
        )

    async def fetch(self, after_seq: int, limit: int, before_seq: int | None = None) -> list[Row]:
        """Messages with ``after_seq < seq (< before_seq)``, oldest first."""
        upper = before_seq if before_seq is not None else 2**62

        def query() -> list[Row]:
            rows = (
                self._conn()
                .execute(
                    "SELECT seq, topic, payload, created_ms FROM outbox "
                    "WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?",
                    (after_seq, upper, limit),
                )
                .fetchall()
            )
            return [Row(r[0], r[1], bytes(r[2]), r[3]) for r in rows]

        rows = await self._run(query)
        if self._memory:
            held = [r for seq, r in self._memory.items() if after_seq < seq < upper]
            rows = sorted(rows + held, key=lambda r: r.seq)[:limit]
        return rows

    async def remove(self, seqs: Sequence[int]) -> None:
        """Forget messages the broker acknowledged."""
        if not seqs:
            return
        for seq in seqs:
            held = self._memory.pop(seq, None)
            if held is not None:
                self.depth -= 1
                self.bytes -= len(held.payload)
        if not self.depth - len(self._memory):
            return  # nothing on disk to delete (also spares a full disk a transaction)

        def delete() -> None:
            db = self._conn()
            with _transaction(db):
                sizes = db.execute(
                    f"SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox "
                    f"WHERE seq IN ({','.join('?' * len(seqs))})",
                    list(seqs),
                ).fetchone()
                db.execute(
                    f"DELETE FROM outbox WHERE seq IN ({','.join('?' * len(seqs))})", list(seqs)
                )
            self.depth -= int(sizes[0])
            self.bytes -= int(sizes[1])

        try:
            await self._run(delete)
        except (OSError, sqlite3.Error) as exc:
            # The rows stay and are sent again after the next reconnect: a duplicate at the
            # broker, stored once by the collector. Better than stopping the uplink.
            self.write_errors += 1
            log.warning("outbox %s: cannot remove published messages: %s", self.path, exc)

    async def expire(self, now_ms: int) -> int:
        """Drop messages older than ``max_age_s``; returns how many."""
        cutoff = now_ms - int(self.settings.max_age_s * 1000)

        def purge() -> int:
            db = self._conn()
            with _transaction(db):
                n, size = db.execute(
                    "SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox "
                    "WHERE created_ms < ?",
                    (cutoff,),
                ).fetchone()
                if n:
                    db.execute("DELETE FROM outbox WHERE created_ms < ?", (cutoff,))
                    _set_meta(db, "dropped", self.dropped + int(n))
            if n:
                self._dropped(int(n), int(size), "older than max_age_s")
            return int(n)

        try:
            return await self._run(purge)
        except (OSError, sqlite3.Error) as exc:
            self.write_errors += 1
            log.warning("outbox %s: cannot expire old messages: %s", self.path, exc)
            return 0

    async def stats(self) -> OutboxStats:
        def oldest() -> int | None:
            row = self._conn().execute("SELECT min(created_ms) FROM outbox").fetchone()
            return int(row[0]) if row[0] is not None else None

        return OutboxStats(self.depth, self.bytes, self.dropped, await self._run(oldest))


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error (the connection is in autocommit)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        elif self._db.in_transaction:
            # SQLite may have rolled back already (a full disk does that).
            self._db.execute("ROLLBACK")


def _set_meta(db: sqlite3.Connection, key: str, value: int) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
