"""The synthetic fleet into a real collector and InfluxDB: every message and value arrives."""

from __future__ import annotations

import asyncio
import uuid

from platform_helpers import collector_for, mqtt_settings, running
from servers import MosquittoServer, wait_until

from firmware_sim import SHELTER_DEVICES
from firmware_sim.synthetic import SyntheticSpec, run_synthetic
from shelterwatch.store.influx import InfluxStore, quote_ident
from shelterwatch.store.lineprotocol import STATUS_MEASUREMENT


async def _stored(store: InfluxStore) -> tuple[int, int]:
    """(points, field values) over every data measurement."""
    results = await store.query("SHOW MEASUREMENTS")
    names = [r[0] for s in results[0].get("series", []) for r in s["values"]]
    points = values = 0
    for name in names:
        if name == STATUS_MEASUREMENT:
            continue
        rows = await store.query(f"SELECT * FROM {quote_ident(name)}")
        for series in rows[0].get("series", []):
            columns = series["columns"]
            fields = [
                i for i, c in enumerate(columns) if c not in ("time", "device", "gateway", "site")
            ]
            for row in series["values"]:
                points += 1
                values += sum(1 for i in fields if row[i] is not None)
    return points, values


async def test_a_synthetic_fleet_is_stored_whole(
    mosquitto: MosquittoServer, influx_store: InfluxStore
) -> None:
    # A prefix of its own: the fleet's retained births must not reach other tests' collectors.
    mqtt = mqtt_settings(mosquitto.port, prefix=f"syn{uuid.uuid4().hex[:8]}/v1")
    collector = collector_for(influx_store, mqtt, client_id=f"syn-{uuid.uuid4().hex[:8]}")
    spec = SyntheticSpec(shelters=300, rate=1500, snapshot_s=1.0, connections=2)
    async with running(collector.run()):
        await wait_until(collector.subscribed.is_set, timeout=10, what="collector subscribed")
        stats = await run_synthetic(spec, mqtt, asyncio.Event(), duration_s=2.0)
        assert stats.messages >= 2000
        await wait_until(
            lambda: collector.stats.samples >= stats.messages,
            timeout=30,
            what="every data message taken by the collector",
        )
        await wait_until(
            lambda: collector.acked >= stats.messages + stats.births + stats.deaths,
            timeout=30,
            what="every message stored and acknowledged",
        )
    s = collector.stats
    assert (s.samples, s.values) == (stats.messages, stats.values)
    assert (s.malformed, s.unknown_topic, s.out_of_range, s.missing) == (0, 0, 0, 0)
    assert s.statuses == 300 * len(SHELTER_DEVICES)
    assert await _stored(influx_store) == (stats.messages, stats.values)
    assert await influx_store.count(STATUS_MEASUREMENT) == 300 * len(SHELTER_DEVICES)
