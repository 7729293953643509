"""The InfluxDB adapter, through the v1 HTTP API (``/write``, ``/query`` with InfluxQL).

InfluxDB 1.x serves this API natively, 2.x through its v1 compatibility endpoints and 3.x Core
natively, so this one code path covers all three.

Durability: InfluxDB answers ``204`` to ``/write`` only after the points are in its WAL (fsync'd
by default), so a write that returns here survives a server crash.

Retries are safe: a point is identified by measurement, tag set and timestamp, so writing the
same batch twice overwrites the points with themselves.
"""

from __future__ import annotations

import asyncio
import gzip as gzip_module
import json
import logging
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any, Self

import httpx

from shelterwatch.errors import StoreError, StoreRejected
from shelterwatch.store.base import DeviceStatus, FieldValue, HistoryPoint, LatestValue, Sample
from shelterwatch.store.lineprotocol import (
    STATUS_MEASUREMENT,
    LineProtocolError,
    encode_samples,
    encode_statuses,
)

__all__ = ["InfluxStore", "quote_ident", "quote_literal"]

# Its own generator: jitter must not move the global `random` state (see shelterwatch.backoff).
_JITTER = random.SystemRandom()

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^(INF|(\d+(ns|u|µ|ms|s|m|h|d|w))+)$")
# 408 and 429 are client-side codes that mean "later", not "never".
_RETRYABLE_4XX = frozenset({408, 429})
# Statements per /query request in latest(): keeps request bodies and responses moderate.
_STATEMENTS_PER_QUERY = 200


def quote_ident(name: str) -> str:
    """An InfluxQL identifier, double-quoted, safe for any name."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_literal(text: str) -> str:
    """An InfluxQL string literal, single-quoted, safe for any text."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return "'" + escaped + "'"


def _error_text(resp: httpx.Response) -> str:
    """InfluxDB's own error message: JSON ``{"error": ...}``, or a header, or the body."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    if isinstance(body, dict) and isinstance(body.get("message"), str):  # 2.x style
        return str(body["message"])
    header: str | None = resp.headers.get("X-Influxdb-Error")
    if header:
        return header
    text = resp.text.strip()
    return text[:500] if text else resp.reason_phrase


def _coerce(value: Any, field_type: str) -> FieldValue:
    # InfluxDB's JSON writes the float 2.0 as 2, so the field type decides, not the JSON type.
    if field_type == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if field_type == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if field_type == "boolean":
        return bool(value)
    if field_type == "string":
        return str(value)
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


class InfluxStore:
    """A TimeSeriesStore on InfluxDB's v1 HTTP API.

    ``retries`` is the number of extra tries after the first for 5xx answers, 408/429,
    timeouts and connection errors, with capped exponential backoff and jitter between them.
    Any other 4xx raises StoreRejected at once. ``retention`` (an InfluxQL duration such as
    ``"90d"``, or ``"INF"``) sets the duration of the database's default policy on open.
    """

    def __init__(
        self,
        url: str,
        database: str,
        username: str | None = None,
        password: str | None = None,
        *,
        gzip: bool = False,
        timeout_s: float = 10.0,
        retries: int = 5,
        backoff_s: float = 0.2,
        max_backoff_s: float = 10.0,
        retention: str | None = None,
        create_database: bool = True,
    ) -> None:
        if not database:
            raise ValueError("InfluxStore needs a database name")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if retention is not None and not _DURATION.match(retention):
            raise ValueError(
                f"retention {retention!r} is not an InfluxQL duration such as 30d, 12w or INF"
            )
        self.url = url.rstrip("/")
        self.database = database
        self._auth = (username, password or "") if username else None
        self.gzip = gzip
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.retention = retention
        self.create_database = create_database
        self._client: httpx.AsyncClient | None = None
        self._link_ok = True

    def __repr__(self) -> str:
        return f"InfluxStore({self.url!r}, {self.database!r})"

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._client = httpx.AsyncClient(
            base_url=self.url,
            auth=self._auth,
            timeout=self.timeout_s,
            headers={"User-Agent": "shelterwatch"},
        )
        try:
            if self.create_database:
                # Idempotent in InfluxDB 1.x as long as no conflicting policy is given.
                await self.query(f"CREATE DATABASE {quote_ident(self.database)}", write=True)
            if self.retention is not None:
                await self.query(
                    f"ALTER RETENTION POLICY {quote_ident('autogen')} ON "
                    f"{quote_ident(self.database)} DURATION {self.retention} DEFAULT",
                    write=True,
                )
        except BaseException:
            await self._client.aclose()
            self._client = None
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def drop_database(self) -> None:
        """Drop this store's database (tests and benchmarks clean up with it)."""
        await self.query(f"DROP DATABASE {quote_ident(self.database)}", write=True)

    # -- writes ----------------------------------------------------------------------------

    async def write(self, samples: Sequence[Sample]) -> None:
        try:
            encoded = encode_samples(samples)
        except LineProtocolError as exc:
            raise StoreRejected(f"InfluxDB cannot store this batch: {exc}") from exc
        if encoded.dropped:
            log.warning(
                "dropped %d field value(s) that InfluxDB cannot hold (NaN, infinity or "
                "integers outside int64) from a batch of %d samples",
                encoded.dropped,
                len(samples),
            )
        if encoded.lines:
            await self._write_lines(encoded.data)

    async def write_status(self, statuses: Sequence[DeviceStatus]) -> None:
        try:
            encoded = encode_statuses(statuses)
        except LineProtocolError as exc:
            raise StoreRejected(f"InfluxDB cannot store this device status: {exc}") from exc
        if encoded.lines:
            await self._write_lines(encoded.data)

    async def _write_lines(self, data: bytes) -> None:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            # Level 1: most of the size win for a fraction of the CPU (see measured-limits).
            data = gzip_module.compress(data, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        await self._request(
            "POST",
            "/write",
            params={"db": self.database, "precision": "ms"},
            content=data,
            headers=headers,
            what="write",
        )

    # -- queries ---------------------------------------------------------------------------

    async def query(self, q: str, *, write: bool = False) -> list[dict[str, Any]]:
        """Run InfluxQL (one or more ``;``-separated statements); return the per-statement
        results. A statement's own error raises StoreRejected with InfluxDB's message.

        POST always: 1.x needs it for CREATE/DROP/ALTER, it accepts it for SELECT/SHOW, and a
        form body has no URL length limit. ``write`` only changes the log wording.
        """
        resp = await self._request(
            "POST",
            "/query",
            params={"db": self.database, "epoch": "ms"},
            data={"q": q},
            what="query" if not write else "statement",
        )
        try:
            body = resp.json()
        except ValueError as exc:
            raise StoreError(
                f"InfluxDB at {self.url} answered /query with something that is not JSON: "
                f"{resp.text[:200]!r}"
            ) from exc
        results = body.get("results", []) if isinstance(body, dict) else []
        for result in results:
            if "error" in result:
                raise StoreRejected(
                    f"InfluxDB at {self.url} (database {self.database!r}) refused "
                    f"{_shorten(q)!r}: {result['error']}"
                )
        return list(results)

    async def latest(self, site: str) -> list[LatestValue]:
        where = f"WHERE {quote_ident('site')} = {quote_literal(site)}"
        head = await self.query(f"SHOW MEASUREMENTS {where}; SHOW FIELD KEYS")
        measurements = [row[0] for row in _values(head[0]) if row[0] != STATUS_MEASUREMENT]
        field_types: dict[str, dict[str, str]] = {}
        for series in head[1].get("series", []):
            types = field_types.setdefault(series["name"], {})
            for key, ftype in series.get("values", []):
                # A field that changed type between shards is listed twice; keep the first.
                types.setdefault(key, ftype)

        # Per-field last(): a device reports by exception, so each point has its own newest
        # timestamp. last(*) would return one row with time 0.
        group = f"GROUP BY {quote_ident('device')}"
        statements: list[tuple[str, str, str]] = []
        for meas in measurements:
            for key in field_types.get(meas, {}):
                stmt = f"SELECT last({quote_ident(key)}) FROM {quote_ident(meas)} {where} {group}"
                statements.append((meas, key, stmt))

        units = await self._latest_units(where, group)
        out: list[LatestValue] = []
        for start in range(0, len(statements), _STATEMENTS_PER_QUERY):
            chunk = statements[start : start + _STATEMENTS_PER_QUERY]
            results = await self.query("; ".join(stmt for _, _, stmt in chunk))
            for (meas, key, _), result in zip(chunk, results, strict=True):
                ftype = field_types[meas][key]
                for series in result.get("series", []):
                    device = series.get("tags", {}).get("device", "")
                    for ts, value in series.get("values", []):
                        if value is None:
                            continue
                        out.append(
                            LatestValue(
                                device=device,
                                kind=meas,
                                point=key,
                                value=_coerce(value, ftype),
                                ts_ms=int(ts),
                                unit=units.get(device, {}).get(key, ""),
                            )
                        )
        out.sort(key=lambda v: (v.device, v.kind, v.point))
        return out

    async def _latest_units(self, where: str, group: str) -> dict[str, Mapping[str, str]]:
        results = await self.query(
            f"SELECT last({quote_ident('units')}) FROM {quote_ident(STATUS_MEASUREMENT)} "
            f"{where} {group}"
        )
        units: dict[str, Mapping[str, str]] = {}
        for series in results[0].get("series", []):
            device = series.get("tags", {}).get("device", "")
            for _, text in series.get("values", []):
                try:
                    parsed = json.loads(text)
                except (TypeError, ValueError):
                    log.debug("ignoring unreadable units %r of device %r", text, device)
                    continue
                if isinstance(parsed, dict):
                    units[device] = {str(k): str(v) for k, v in parsed.items()}
        return units

    async def count(self, measurement: str, site: str | None = None) -> int:
        """Points of ``measurement``. InfluxQL counts per field, so this is the count of the
        most frequent field: exact when every sample carries the same fields."""
        q = f"SELECT count(*) FROM {quote_ident(measurement)}"
        if site is not None:
            q += f" WHERE {quote_ident('site')} = {quote_literal(site)}"
        results = await self.query(q)
        best = 0
        for series in results[0].get("series", []):
            for row in series.get("values", []):
                best = max([best, *(int(v) for v in row[1:] if v is not None)])
        return best

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
        field = quote_ident(point)
        where = (
            f"WHERE {quote_ident('site')} = {quote_literal(site)} "
            f"AND {quote_ident('device')} = {quote_literal(device)} "
            f"AND time >= {int(since_ms)}ms AND time <= {int(until_ms)}ms"
        )
        types = await self.query(f"SHOW FIELD KEYS FROM {quote_ident(measurement)}")
        ftype = next((t for key, t in _values(types[0]) if key == point), None)
        if ftype is None:
            return []  # never stored: InfluxQL would answer an empty result anyway
        if bucket_ms is None:
            select = f"SELECT {field} FROM {quote_ident(measurement)} {where}"
        else:
            if bucket_ms < 1:
                raise ValueError(f"bucket_ms must be at least 1, got {bucket_ms}")
            # mean() refuses booleans and strings; their bucket shows its last value.
            summary = "mean" if ftype in ("float", "integer") else "last"
            select = (
                f"SELECT {summary}({field}) FROM {quote_ident(measurement)} {where} "
                f"GROUP BY time({int(bucket_ms)}ms) fill(none)"
            )
        out = []
        for ts, value in _values((await self.query(select))[0]):
            if value is None:
                continue
            kind = "float" if bucket_ms is not None and ftype == "integer" else ftype
            out.append(HistoryPoint(int(ts), _coerce(value, kind)))
        return out

    async def sites(self) -> list[str]:
        results = await self.query(f"SHOW TAG VALUES WITH KEY = {quote_ident('site')}")
        found = {row[1] for series in results[0].get("series", []) for row in series["values"]}
        return sorted(found)

    # -- HTTP with retries ------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        cap = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        # Jitter spreads the retries of many collectors that lost the same server at once.
        return _JITTER.uniform(cap / 2, cap)

    def _link_failed(self, what: str, reason: str, attempt: int) -> None:
        if self._link_ok:
            self._link_ok = False
            log.warning(
                "InfluxDB %s at %s failed (%s); retrying up to %d times",
                what,
                self.url,
                reason,
                self.retries,
            )
        else:
            log.debug(
                "InfluxDB %s at %s failed again, try %d (%s)", what, self.url, attempt, reason
            )

    def _link_recovered(self) -> None:
        if not self._link_ok:
            self._link_ok = True
            log.info("InfluxDB at %s answers again", self.url)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, str],
        content: bytes | None = None,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        client = self._client
        if client is None:
            raise StoreError(f"{self!r} is not open: use it as `async with store:`")
        tries = self.retries + 1
        reason = ""
        for attempt in range(1, tries + 1):
            try:
                resp = await client.request(
                    method, path, params=params, content=content, data=data, headers=headers
                )
            except httpx.TimeoutException as exc:
                reason = f"no answer within {self.timeout_s:g} s ({type(exc).__name__})"
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                status = resp.status_code
                if status < 400:
                    self._link_recovered()
                    return resp
                text = _error_text(resp)
                if status < 500 and status not in _RETRYABLE_4XX:
                    # The server answered, so the link itself is fine.
                    self._link_recovered()
                    raise StoreRejected(_rejected_message(self, what, status, text))
                reason = f"HTTP {status}: {text}"
            self._link_failed(what, reason, attempt)
            if attempt < tries:
                await asyncio.sleep(self._backoff(attempt - 1))
        raise StoreError(
            f"InfluxDB {what} at {self.url} (database {self.database!r}) failed after "
            f"{tries} tries: {reason}. Check that InfluxDB is running and reachable at that "
            "URL; the data was not stored, so retry it later."
        )


def _rejected_message(store: InfluxStore, what: str, status: int, text: str) -> str:
    hint = ""
    if status in (401, 403):
        hint = " Check the username and password (or token) in the store URL."
    elif status == 404 and "database not found" in text:
        hint = " Create the database, or let the store create it on open."
    elif status == 413:
        hint = " Write smaller batches."
    return (
        f"InfluxDB at {store.url} (database {store.database!r}) rejected the {what} "
        f"with HTTP {status}: {text}.{hint}"
    )


def _values(result: Mapping[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for series in result.get("series", []):
        rows.extend(series.get("values", []))
    return rows


def _shorten(q: str, limit: int = 200) -> str:
    return q if len(q) <= limit else q[:limit] + "…"
