"""The whole telemetry path against real servers: simulated devices → gateway → Mosquitto →
collector → InfluxDB or SQLite."""

from __future__ import annotations

import contextlib
import math
import sqlite3
import time
import uuid

import pytest
from platform_helpers import collector_for, gateways_for, mqtt_settings, running
from servers import MosquittoServer, wait_until

from firmware_sim import Fleet, FleetSpec
from shelterwatch.profiles import load_profile
from shelterwatch.store import LatestValue, TimeSeriesStore
from shelterwatch.store.influx import InfluxStore
from shelterwatch.store.sqlite import SqliteStore


def _close(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, int | float) and isinstance(b, int | float)
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return a == b


@pytest.fixture(params=["influx", "sqlite"])
def store(request: pytest.FixtureRequest) -> TimeSeriesStore:
    name = "influx_store" if request.param == "influx" else "sqlite_store"
    st: TimeSeriesStore = request.getfixturevalue(name)
    return st


async def test_simulator_values_arrive_in_the_store(
    mosquitto: MosquittoServer, store: TimeSeriesStore
) -> None:
    started_ms = time.time_ns() // 1_000_000
    # A prefix of its own: retained states other tests left under the default are not ours.
    mqtt = mqtt_settings(mosquitto.port, prefix=f"t{uuid.uuid4().hex[:6]}/v1")
    async with Fleet(FleetSpec(shelters=1, sirens=1, tick_s=0.2)) as fleet:
        gateways = gateways_for(fleet, mqtt, snapshot_interval_s=0.5)
        collector = collector_for(store, mqtt, client_id=f"c-{uuid.uuid4().hex[:8]}")
        async with running(collector.run(), *(g.run() for g in gateways)):
            expected = {(d.site, d.device_id): d for d in fleet.devices}

            async def complete() -> bool:
                for site in fleet.sites:
                    rows = await store.latest(site)
                    devices = {r.device for r in rows}
                    if devices != {d for s, d in expected if s == site}:
                        return False
                    if any(not r.unit and load_profile_unit(r) for r in rows):
                        return False
                return True

            await wait_until(complete, timeout=30, what="every device's points stored")
            # Freeze the physics; the next full snapshot then carries exactly what the
            # simulator's registers hold.
            fleet.pause()

            async def exact() -> bool:
                for site in fleet.sites:
                    for row in await store.latest(site):
                        if not _close(row.value, fleet.value(site, row.device, row.point)):
                            return False
                return True

            await wait_until(exact, timeout=15, what="stored values equal the simulator's")

    now_ms = time.time_ns() // 1_000_000
    for site in fleet.sites:
        rows = await store.latest(site)
        for row in rows:
            sim = fleet.device(site, row.device)
            profile = sim.profile
            point = profile.point(row.point)
            assert row.kind == profile.kind
            assert row.unit == point.unit, (site, row.device, row.point)
            assert started_ms <= row.ts_ms <= now_ms
            assert type(row.value) is type(fleet.value(site, row.device, row.point)) or (
                isinstance(row.value, float)
            )
        stored_points = {(r.device, r.point) for r in rows}
        for sim in (d for d in fleet.devices if d.site == site):
            for p in sim.profile.points:
                assert (sim.device_id, p.name) in stored_points
    assert collector.stats.malformed == 0
    assert collector.stats.missing == 0
    assert await store.count("ventilation", site="shelter-01") >= 1
    # Each site's district (its gateway's setting) is stored with its readings and states.
    expected_districts = {(site, fleet.district(site)) for site in fleet.sites}
    assert ("shelter-01", "xihu") in expected_districts
    assert await _site_districts(store, "device_status") == expected_districts
    assert await _site_districts(store, "ventilation") == {("shelter-01", "xihu")}


async def _site_districts(store: TimeSeriesStore, measurement: str) -> set[tuple[str, str | None]]:
    """(site, district) of what is stored in ``measurement``; None: no district."""
    if isinstance(store, InfluxStore):
        (result,) = await store.query(f'SHOW SERIES FROM "{measurement}"')
        out: set[tuple[str, str | None]] = set()
        for series in result.get("series", []):
            for (key,) in series["values"]:
                tags = dict(pair.split("=", 1) for pair in key.split(",")[1:])
                out.add((tags["site"], tags.get("district")))
        return out
    assert isinstance(store, SqliteStore)
    with contextlib.closing(sqlite3.connect(store.path)) as conn:
        if measurement == "device_status":
            rows = conn.execute("SELECT DISTINCT site, district FROM device_status").fetchall()
        else:
            sql = "SELECT DISTINCT site, district FROM samples WHERE measurement = ?"
            rows = conn.execute(sql, (measurement,)).fetchall()
    return {(site, district) for site, district in rows}


def load_profile_unit(row: LatestValue) -> str:
    profiles = {
        "door": "blast_door",
        "ventilation": "ventilation",
        "water": "water",
        "environment": "environment",
        "power": "power",
        "siren": "siren",
    }
    return load_profile(profiles[row.kind]).point(row.point).unit


async def test_broker_restart_loses_no_telemetry(
    mosquitto: MosquittoServer, sqlite_store: TimeSeriesStore
) -> None:
    # A prefix of its own: retained states other tests left under the default are not ours.
    mqtt = mqtt_settings(mosquitto.port, prefix=f"t{uuid.uuid4().hex[:6]}/v1")
    async with Fleet(FleetSpec(shelters=1, sirens=1, tick_s=0.1)) as fleet:
        gateways = gateways_for(fleet, mqtt, interval_s=0.1, snapshot_interval_s=1)
        collector = collector_for(sqlite_store, mqtt, client_id=f"c-{uuid.uuid4().hex[:8]}")
        async with running(collector.run(), *(g.run() for g in gateways)):
            await wait_until(lambda: collector.stats.samples > 20, 20, "data flowing")
            mosquitto.restart()
            queued = sum(g.stats.queued for g in gateways)
            await wait_until(
                lambda: all(g.stats.connects >= 2 for g in gateways), 20, "gateways reconnected"
            )
            # Everything queued before and during the outage arrives.
            await wait_until(
                lambda: collector.stats.samples + collector.stats.statuses >= queued,
                20,
                "messages from the outage stored",
            )
            await wait_until(lambda: collector.subscribed.is_set(), 20, "collector back")
            # A message in flight when the broker went down is replayed from the outbox.
            await wait_until(lambda: collector.stats.missing == 0, 20, "every seq gap filled")
    assert collector.stats.missing == 0
    assert all(g.outbox.dropped == 0 for g in gateways)
    assert sum(g.stats.published for g in gateways) >= queued
