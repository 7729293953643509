"""The time-series store interface that the collector writes to and the control service reads.

Two adapters implement it: InfluxDB through its v1-compatible HTTP API (``influx.py``) and
SQLite in WAL mode (``sqlite.py``), the embedded default.

Data model, the same in both adapters:
- a *sample* is one device message: measurement = the device kind (``ventilation``), tags
  ``site``, ``gateway``, ``device`` and ``district`` (only when the gateway names one: an
  empty district is no tag), one field per point, a timestamp in epoch ms;
- a *device status* row records a device's online state, last error and point units, written
  when its retained state message arrives (InfluxDB measurement ``device_status``), with the
  same ``district``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, Self, runtime_checkable

__all__ = [
    "DeviceStatus",
    "FieldValue",
    "HistoryPoint",
    "LatestValue",
    "Sample",
    "TimeSeriesStore",
]

FieldValue = bool | int | float | str


@dataclass(frozen=True, slots=True)
class Sample:
    measurement: str
    site: str
    gateway: str
    device: str
    ts_ms: int
    fields: Mapping[str, FieldValue]
    district: str = ""  # "" stores no district tag


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    site: str
    gateway: str
    device: str
    kind: str
    ts_ms: int
    online: bool
    error: str = ""
    units: Mapping[str, str] = field(default_factory=dict)
    district: str = ""  # "" stores no district tag


@dataclass(frozen=True, slots=True)
class LatestValue:
    device: str
    kind: str
    point: str
    value: FieldValue
    ts_ms: int
    unit: str = ""


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One point of a history: a stored value, or a bucket's summary (its start time; the
    mean of a numeric point, the last value of a boolean or text point)."""

    ts_ms: int
    value: FieldValue


@runtime_checkable
class TimeSeriesStore(Protocol):
    """Every write returns only once the data is durable, so callers may then acknowledge it.

    ``write`` raises StoreRejected when the store refuses the data itself (retrying will not
    help) and StoreError for anything that may pass on a retry.
    """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def write(self, samples: Sequence[Sample]) -> None: ...

    async def write_status(self, statuses: Sequence[DeviceStatus]) -> None: ...

    async def latest(self, site: str) -> list[LatestValue]:
        """The newest value of every point of every device at ``site``, with its unit."""
        ...

    async def count(self, measurement: str, site: str | None = None) -> int:
        """How many samples of ``measurement`` are stored (for tests, benchmarks, checks)."""
        ...

    async def sites(self) -> list[str]: ...

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
        """The values of one point of one device between ``since_ms`` and ``until_ms``
        (both included), oldest first. With ``bucket_ms``, one point per non-empty bucket
        of that width aligned to the epoch (as InfluxQL's ``GROUP BY time()``): a chart of
        a week gets a few hundred points, not every sample."""
        ...
