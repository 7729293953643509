"""The time-series store: one interface, an InfluxDB adapter and an embedded SQLite adapter."""

from __future__ import annotations

from shelterwatch.store.base import (
    DeviceStatus,
    FieldValue,
    HistoryPoint,
    LatestValue,
    Sample,
    TimeSeriesStore,
)

__all__ = [
    "DeviceStatus",
    "FieldValue",
    "HistoryPoint",
    "LatestValue",
    "Sample",
    "TimeSeriesStore",
]
