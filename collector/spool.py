"""The collector's disk spool: where batches wait, in order, while the store is down.

Without it, a store outage holds every message at the broker, unacknowledged. That works
only up to the broker's queue limits (``max_queued_messages``/``max_queued_bytes``), past
which Mosquitto drops messages without telling anyone, and only as durably as the broker's
last snapshot (``autosave_interval``). With it, the collector writes a batch here when the
store fails, acknowledges the batch to the broker once the spool's transaction is committed
(``synchronous=FULL``: durable, as a store write would be), and drains the spool into the
store oldest first when the store answers again. While anything is spooled, new batches
queue behind it, so the store receives every batch in the order it arrived.

The spool is bounded in bytes. When it is full it drops the oldest batches, logs how many
records went, and counts them persistently (``dropped``): a loss is never silent.

SQLite in WAL mode, one connection on one worker thread. The file is created the first time
something is spooled; a spool left by an earlier run is drained when the collector starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shelterwatch.errors import ShelterwatchError
from shelterwatch.store import DeviceStatus, Sample

__all__ = ["Spool", "SpoolError", "SpoolSettings", "SpooledBatch"]

log = logging.getLogger(__name__)
T = TypeVar("T")

Kind = Literal["samples", "statuses"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    records INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class SpoolError(ShelterwatchError):
    """The spool cannot be written (disk full, unwritable directory)."""


class SpoolSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # false: a store outage holds messages unacknowledged at the broker instead.
    enabled: bool = True
    # Default: data/<client_id>-spool.db
    path: Path | None = None
    # Largest size of the spooled payloads; past it the oldest batches are dropped (counted).
    max_bytes: Annotated[int, Field(ge=1_000_000)] = 1024 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    id: int
    kind: Kind
    samples: list[Sample]
    statuses: list[DeviceStatus]

    @property
    def records(self) -> int:
        return len(self.samples) + len(self.statuses)


def _encode(kind: Kind, records: Sequence[Sample] | Sequence[DeviceStatus]) -> bytes:
    rows: list[dict[str, Any]] = []
    for r in records:
        if isinstance(r, Sample):
            rows.append(
                {
                    "m": r.measurement,
                    "s": r.site,
                    "g": r.gateway,
                    "d": r.device,
                    "t": r.ts_ms,
                    "f": dict(r.fields),
                }
            )
            if r.district:
                rows[-1]["di"] = r.district
        else:
            rows.append(
                {
                    "s": r.site,
                    "g": r.gateway,
                    "d": r.device,
                    "k": r.kind,
                    "t": r.ts_ms,
                    "o": r.online,
                    "e": r.error,
                    "u": dict(r.units),
                }
            )
            if r.district:
                rows[-1]["di"] = r.district
    # JSON keeps bool, int, float and str apart, which is all a field value can be; ingest
    # has already refused NaN and infinities.
    return json.dumps(rows, separators=(",", ":"), allow_nan=False).encode()


def _decode(batch_id: int, kind: Kind, payload: bytes) -> SpooledBatch:
    rows = json.loads(payload)
    if kind == "samples":
        samples = [
            Sample(r["m"], r["s"], r["g"], r["d"], r["t"], r["f"], r.get("di", "")) for r in rows
        ]
        return SpooledBatch(batch_id, kind, samples, [])
    statuses = [
        DeviceStatus(
            r["s"], r["g"], r["d"], r["k"], r["t"], r["o"], r["e"], r["u"], r.get("di", "")
        )
        for r in rows
    ]
    return SpooledBatch(batch_id, kind, [], statuses)


class Spool:
    """Batches in arrival order, on disk. Open with ``async with``; every call is async."""

    def __init__(self, path: Path, settings: SpoolSettings) -> None:
        self.path = path
        self.settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._db: sqlite3.Connection | None = None
        self.depth = 0  # batches waiting
        self.records = 0  # records waiting
        self.bytes = 0
        self.dropped = 0  # records dropped because the spool was full (persistent)
        self.spooled = 0  # records written here since start
        self.drained = 0  # records written from here into the store since start

    async def __aenter__(self) -> Spool:
        # Only an existing spool is opened at start (to drain what an earlier run left);
        # a new one is created on the first append, so a collector whose store never fails
        # leaves no file behind.
        if self.path.exists():
            await self._run(self._open)
            if self.depth:
                log.info(
                    "spool %s holds %d records (%d batches) from before the restart; they go "
                    "to the store first",
                    self.path,
                    self.records,
                    self.depth,
                )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._run(self._close)
        finally:
            self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _open(self) -> None:
        if self._db is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # The broker forgets a message once it is acknowledged; from then on this file is
            # its only copy, so a commit must survive a power cut, like a store write.
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            depth, records, size = db.execute(
                "SELECT count(*), coalesce(sum(records), 0), coalesce(sum(length(payload)), 0) "
                "FROM batches"
            ).fetchone()
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(
                f"cannot open the spool {self.path}: {exc}; check that the directory is "
                "writable and the disk is not full"
            ) from exc
        self._db = db
        self.depth, self.records, self.bytes = int(depth), int(records), int(size)
        self.dropped = int(meta.get("dropped", 0))

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _conn(self) -> sqlite3.Connection:
        self._open()
        assert self._db is not None
        return self._db

    async def append(self, kind: Kind, records: Sequence[Sample] | Sequence[DeviceStatus]) -> None:
        """Store one batch durably; raises SpoolError when it cannot."""
        payload = _encode(kind, records)
        try:
            await self._run(lambda: self._append(kind, len(records), payload))
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"cannot write to the spool {self.path}: {exc}") from exc
        self.spooled += len(records)

    def _append(self, kind: Kind, n: int, payload: bytes) -> None:
        db = self._conn()
        limit = self.settings.max_bytes
        dropped_batches = dropped_records = freed = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO batches (kind, records, payload) VALUES (?, ?, ?)", (kind, n, payload)
            )
            size = self.bytes + len(payload)
            if size > limit:
                # Free a tenth of the budget at once, so a full spool does not delete on
                # every append. The newest batch is kept: it is the one just acknowledged.
                target = size - limit + limit // 10
                last = None
                rows = db.execute(
                    "SELECT id, records, length(payload) FROM batches ORDER BY id"
                ).fetchall()
                for batch_id, records, length in rows[:-1]:
                    if freed >= target:
                        break
                    last, freed = batch_id, freed + length
                    dropped_batches += 1
                    dropped_records += records
                if last is not None:
                    db.execute("DELETE FROM batches WHERE id <= ?", (last,))
                    _set_meta(db, "dropped", self.dropped + dropped_records)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.depth += 1 - dropped_batches
        self.records += n - dropped_records
        self.bytes += len(payload) - freed
        if dropped_records:
            self.dropped += dropped_records
            log.error(
                "spool %s is full (spool.max_bytes %d): dropped the %d oldest records; %d "
                "dropped in total. The store has been down too long: bring it back or raise "
                "spool.max_bytes",
                self.path,
                limit,
                dropped_records,
                self.dropped,
            )

    async def oldest(self) -> SpooledBatch | None:
        def query() -> SpooledBatch | None:
            row = (
                self._conn()
                .execute("SELECT id, kind, payload FROM batches ORDER BY id LIMIT 1")
                .fetchone()
            )
            return _decode(row[0], row[1], bytes(row[2])) if row else None

        if self.depth == 0:
            return None
        return await self._run(query)

    async def remove(self, batch: SpooledBatch) -> None:
        """Forget a batch that is now in the store."""

        def delete() -> int:
            db = self._conn()
            row = db.execute(
                "SELECT length(payload) FROM batches WHERE id = ?", (batch.id,)
            ).fetchone()
            db.execute("DELETE FROM batches WHERE id = ?", (batch.id,))
            return int(row[0]) if row else 0

        size = await self._run(delete)
        if size:
            self.depth -= 1
            self.records -= batch.records
            self.bytes -= size
            self.drained += batch.records


def _set_meta(db: sqlite3.Connection, key: str, value: int) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
