"""history() of both store adapters against the real thing: InfluxDB 1.x and an SQLite file.

The same data must read back the same from both: raw values oldest first, and buckets
aligned to the epoch with the mean of a numeric point and the last value of any other.
"""

from __future__ import annotations

import pytest

from shelterwatch.store.base import HistoryPoint, Sample, TimeSeriesStore

pytestmark = pytest.mark.integration

# A multiple of 10 s, so that 10 s buckets start exactly at T0.
T0 = 1_700_000_000_000


@pytest.fixture(params=["sqlite", "influx"])
def store(request: pytest.FixtureRequest) -> TimeSeriesStore:
    return request.getfixturevalue(f"{request.param}_store")  # type: ignore[no-any-return]


async def _fill(store: TimeSeriesStore) -> None:
    samples = [
        Sample(
            "ventilation",
            "s1",
            "gw",
            "vent",
            T0 + i * 2_000,
            {"overpressure": 30.0 + i, "fan_running": i % 2 == 0, "count": i, "mode": f"m{i}"},
        )
        for i in range(10)
    ]
    # Other series that must not leak in: another device, another site, another kind.
    samples += [
        Sample("ventilation", "s1", "gw", "vent-2", T0 + 1, {"overpressure": 99.0}),
        Sample("ventilation", "s2", "gw", "vent", T0 + 1, {"overpressure": 98.0}),
        Sample("environment", "s1", "gw", "vent", T0 + 1, {"overpressure": 97.0}),
    ]
    await store.write(samples)


async def test_raw_history_is_one_point_oldest_first(store: TimeSeriesStore) -> None:
    await _fill(store)
    got = await store.history("ventilation", "s1", "vent", "overpressure", T0, T0 + 20_000)
    assert got == [HistoryPoint(T0 + i * 2_000, 30.0 + i) for i in range(10)]
    assert all(type(p.value) is float for p in got)
    # Both ends are included; outside the range nothing.
    assert len(await store.history("ventilation", "s1", "vent", "overpressure", T0, T0)) == 1
    inner = await store.history("ventilation", "s1", "vent", "count", T0 + 2_000, T0 + 4_000)
    assert inner == [HistoryPoint(T0 + 2_000, 1), HistoryPoint(T0 + 4_000, 2)]
    assert type(inner[0].value) is int
    flags = await store.history("ventilation", "s1", "vent", "fan_running", T0, T0 + 2_000)
    assert flags == [HistoryPoint(T0, True), HistoryPoint(T0 + 2_000, False)]
    assert await store.history("ventilation", "s1", "vent", "nope", T0, T0 + 20_000) == []
    assert await store.history("ventilation", "s9", "vent", "overpressure", T0, T0 + 9) == []


async def test_buckets_hold_the_mean_or_the_last_value(store: TimeSeriesStore) -> None:
    await _fill(store)
    end = T0 + 19_999

    async def call(point: str) -> list[HistoryPoint]:
        return await store.history("ventilation", "s1", "vent", point, T0, end, bucket_ms=10_000)

    # Samples at +0..+8 s fall in the first bucket, +10..+18 s in the second.
    assert await call("overpressure") == [HistoryPoint(T0, 32.0), HistoryPoint(T0 + 10_000, 37.0)]
    counts = await call("count")
    assert counts == [HistoryPoint(T0, 2.0), HistoryPoint(T0 + 10_000, 7.0)]
    assert all(type(p.value) is float for p in counts)
    # The newest of each bucket: +8 s (i=4, even) and +18 s (i=9, odd).
    assert await call("fan_running") == [HistoryPoint(T0, True), HistoryPoint(T0 + 10_000, False)]
    assert await call("mode") == [HistoryPoint(T0, "m4"), HistoryPoint(T0 + 10_000, "m9")]
    with pytest.raises(ValueError):
        await store.history("ventilation", "s1", "vent", "count", T0, end, bucket_ms=0)
