"""The embedded SQLite adapter: one file, WAL mode, durable on every write.

``synchronous=FULL`` in WAL mode fsyncs the WAL on every commit, so a ``write`` that returned
survives a power cut; ``NORMAL`` would only survive a process crash.

sqlite3 connections must not be shared between threads, and SQLite serialises writers anyway,
so every call runs on one dedicated worker thread that owns the only connection. The event
loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self, TypeVar

from shelterwatch.errors import StoreError, StoreRejected
from shelterwatch.store.base import DeviceStatus, FieldValue, HistoryPoint, LatestValue, Sample
from shelterwatch.store.lineprotocol import INT64_MAX, INT64_MIN, units_json

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# The unique index serves latest() (site, measurement, device, point, newest ts_ms) and
# makes writes idempotent.
# `num` has no declared type on purpose: REAL affinity would turn int64 values above 2**53
# into rounded floats; without affinity SQLite keeps ints as INTEGER and floats as REAL.
# vtype: f float, i int, b bool (num 0/1), s string (txt).
# `district` is the InfluxDB adapter's district tag: NULL when the gateway names none (no tag,
# not an empty one). Files made before it existed gain the column on open (_COLUMNS_ADDED).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    ts_ms INTEGER NOT NULL,
    measurement TEXT NOT NULL,
    site TEXT NOT NULL,
    gateway TEXT NOT NULL,
    device TEXT NOT NULL,
    point TEXT NOT NULL,
    vtype TEXT NOT NULL,
    num,
    txt TEXT,
    district TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS samples_point
    ON samples (site, measurement, device, point, ts_ms, gateway);
CREATE TABLE IF NOT EXISTS device_status (
    site TEXT NOT NULL,
    gateway TEXT NOT NULL,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    online INTEGER NOT NULL,
    error TEXT NOT NULL,
    units TEXT NOT NULL,
    district TEXT,
    PRIMARY KEY (site, gateway, device)
);
"""

# Columns added to the schema since its first version, as (table, column, declaration): an
# older store file gets them with ALTER TABLE on open. SQLite adds a nullable column without
# rewriting the table, so this is instant whatever the file's size; old rows read NULL.
_COLUMNS_ADDED = (
    ("samples", "district", "TEXT"),
    ("device_status", "district", "TEXT"),
)

# Idempotent like InfluxDB, where a point is identified by measurement, tags and time: a
# batch written again (an MQTT redelivery after a crash before the ack) overwrites itself
# instead of adding duplicate rows.
_INSERT_SAMPLE = """
INSERT INTO samples (ts_ms, measurement, site, gateway, device, district, point, vtype, num, txt)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (site, measurement, device, point, ts_ms, gateway) DO UPDATE SET
    district = excluded.district, vtype = excluded.vtype, num = excluded.num, txt = excluded.txt
"""

# An older status arriving late (a retained message replayed after a newer one) must not
# overwrite the newer one: the same "newest timestamp wins" that InfluxDB's last() gives.
_UPSERT_STATUS = """
INSERT INTO device_status (site, gateway, device, kind, ts_ms, online, error, units, district)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (site, gateway, device) DO UPDATE SET
    kind = excluded.kind, ts_ms = excluded.ts_ms, online = excluded.online,
    error = excluded.error, units = excluded.units, district = excluded.district
WHERE excluded.ts_ms >= device_status.ts_ms
"""

# SQLite returns the bare columns of the row that holds max(ts_ms) in each group.
_LATEST = """
SELECT measurement, device, point, max(ts_ms), vtype, num, txt
FROM samples WHERE site = ?
GROUP BY measurement, device, point
ORDER BY device, measurement, point
"""

# history(): the unique index serves both (site, measurement, device, point, ts_ms range).
_WHERE_POINT = (
    "WHERE site = ? AND measurement = ? AND device = ? AND point = ? AND ts_ms BETWEEN ? AND ?"
)
_HISTORY = f"SELECT ts_ms, vtype, num, txt FROM samples {_WHERE_POINT} ORDER BY ts_ms"
# One row per bucket: the bare columns come from the bucket's newest row (SQLite's max()
# rule), avg(num) is the mean a numeric point is charted by.
_HISTORY_BUCKETS = (
    "SELECT ts_ms / ? AS bucket, max(ts_ms), vtype, num, txt, avg(num) "
    f"FROM samples {_WHERE_POINT} GROUP BY bucket ORDER BY bucket"
)

Row = tuple[int, str, str, str, str, str | None, str, str, int | float | None, str | None]


def _rows(samples: Sequence[Sample]) -> tuple[list[Row], int]:
    rows: list[Row] = []
    dropped = 0
    for s in samples:
        head = (int(s.ts_ms), s.measurement, s.site, s.gateway, s.device, s.district or None)
        # head + (...) rather than (*head, ...): a tuple concatenation is about twice as fast,
        # and this runs once per stored value (RUF005 prefers the unpacking).
        for point, value in s.fields.items():
            if value is True or value is False:
                rows.append(head + (point, "b", int(value), None))  # noqa: RUF005
            elif isinstance(value, float):
                # Same rule as the InfluxDB adapter: NaN (which SQLite would store as NULL)
                # and infinities are dropped, so both stores read back alike.
                if not math.isfinite(value):
                    dropped += 1
                    continue
                rows.append(head + (point, "f", value, None))  # noqa: RUF005
            elif isinstance(value, int):
                if not INT64_MIN <= value <= INT64_MAX:
                    dropped += 1
                    continue
                rows.append(head + (point, "i", value, None))  # noqa: RUF005
            elif isinstance(value, str):
                rows.append(head + (point, "s", None, value))  # noqa: RUF005
            else:
                raise StoreRejected(
                    f"unsupported value type {type(value).__name__} for point {point!r} "
                    f"of device {s.device!r}"
                )
    return rows, dropped


def _add_columns(conn: sqlite3.Connection) -> None:
    """Bring a store file made by an older version up to the current schema."""
    for table, column, decl in _COLUMNS_ADDED:
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column in columns:
            continue
        log.info("SQLite store: adding column %s.%s to an older store file", table, column)
        try:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        except sqlite3.OperationalError:
            # Another process (the control service, a second collector) opening the same
            # file may have added it first.
            if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
                raise


def _value(vtype: str, num: Any, txt: Any) -> FieldValue:
    if vtype == "b":
        return bool(num)
    if vtype == "i":
        return int(num)
    if vtype == "f":
        return float(num)
    return str(txt)


class SqliteStore:
    """A TimeSeriesStore in one SQLite file (WAL). Parent directories are created on open."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise StoreError(f"{self!r} is not open: use it as `async with store:`")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn)

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        try:
            await self._run(self._open)
        except BaseException:
            self._executor.shutdown(wait=True)
            self._executor = None
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._executor is None:
            return
        try:
            await self._run(self._close)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory {self.path.parent} for the SQLite store: "
                f"{exc.strerror or exc}. Check the path and its permissions."
            ) from exc
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"SQLite store {self.path}: could not switch to WAL mode (got {mode!r}); "
                    "is the file on a network or read-only file system?"
                )
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            _add_columns(conn)
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise StoreError(
                f"cannot open the SQLite store {self.path}: {exc}. Check that the path is a "
                "writable file (not a directory) and that it is an SQLite database."
            ) from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        self._conn = conn

    def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self!r} is not open")
        return self._conn

    # -- writes ----------------------------------------------------------------------------

    async def write(self, samples: Sequence[Sample]) -> None:
        rows, dropped = _rows(samples)
        if dropped:
            log.warning(
                "dropped %d field value(s) that the store cannot hold (NaN, infinity or "
                "integers outside int64) from a batch of %d samples",
                dropped,
                len(samples),
            )
        if rows:
            await self._run(lambda: self._transaction(_INSERT_SAMPLE, rows))

    async def write_status(self, statuses: Sequence[DeviceStatus]) -> None:
        rows = [
            (
                st.site,
                st.gateway,
                st.device,
                st.kind,
                int(st.ts_ms),
                int(st.online),
                st.error,
                units_json(st.units),
                st.district or None,
            )
            for st in statuses
        ]
        if rows:
            await self._run(lambda: self._transaction(_UPSERT_STATUS, rows))

    def _transaction(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except (OverflowError, ValueError, sqlite3.DataError, sqlite3.IntegrityError) as exc:
            raise StoreRejected(f"SQLite store {self.path} refused the batch: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(
                f"SQLite store {self.path}: write failed: {exc}. Check free disk space and "
                "that no other process holds a lock on the file; the batch was not stored."
            ) from exc

    # -- reads -----------------------------------------------------------------------------

    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path}: query failed: {exc}") from exc

    async def latest(self, site: str) -> list[LatestValue]:
        def run() -> list[LatestValue]:
            units: dict[str, tuple[int, dict[str, str]]] = {}
            for device, ts, text in self._select(
                "SELECT device, ts_ms, units FROM device_status WHERE site = ?", (site,)
            ):
                if device not in units or ts >= units[device][0]:
                    units[device] = (ts, json.loads(text))
            out = []
            for meas, device, point, ts, vtype, num, txt in self._select(_LATEST, (site,)):
                unit = units.get(device, (0, {}))[1].get(point, "")
                out.append(
                    LatestValue(
                        device=device,
                        kind=meas,
                        point=point,
                        value=_value(vtype, num, txt),
                        ts_ms=int(ts),
                        unit=str(unit),
                    )
                )
            out.sort(key=lambda v: (v.device, v.kind, v.point))
            return out

        return await self._run(run)

    async def count(self, measurement: str, site: str | None = None) -> int:
        """Samples of ``measurement``: distinct (series, timestamp), as InfluxDB counts points."""
        sql = (
            "SELECT count(*) FROM (SELECT DISTINCT site, gateway, device, ts_ms FROM samples "
            "WHERE measurement = ?"
        )
        params: list[Any] = [measurement]
        if site is not None:
            sql += " AND site = ?"
            params.append(site)
        sql += ")"
        return await self._run(lambda: int(self._select(sql, params)[0][0]))

    async def sites(self) -> list[str]:
        sql = "SELECT site FROM samples UNION SELECT site FROM device_status ORDER BY site"
        rows = await self._run(lambda: self._select(sql))
        return [row[0] for row in rows if row[0]]

    async def history(
        self,
        measurement: str,
        site: str,
        device: str,
        point: str,
        since_ms: int,
        until_ms: int,
        *,
        bucket_ms: int | None = None,
    ) -> list[HistoryPoint]:
        where = (site, measurement, device, point, int(since_ms), int(until_ms))
        if bucket_ms is None:
            rows = await self._run(lambda: self._select(_HISTORY, where))
            return [HistoryPoint(int(ts), _value(vt, num, txt)) for ts, vt, num, txt in rows]
        if bucket_ms < 1:
            raise ValueError(f"bucket_ms must be at least 1, got {bucket_ms}")
        rows = await self._run(lambda: self._select(_HISTORY_BUCKETS, (int(bucket_ms), *where)))
        out = []
        for bucket, _ts, vtype, num, txt, mean in rows:
            value = float(mean) if vtype in ("f", "i") else _value(vtype, num, txt)
            out.append(HistoryPoint(int(bucket) * bucket_ms, value))
        return out
