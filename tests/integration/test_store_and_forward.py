"""Store-and-forward: the gateway buffers through broker outages and its own restarts."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from platform_helpers import collector_for, gateways_for, mqtt_settings, running
from servers import MosquittoServer, wait_until

from firmware_sim import Fleet, FleetSpec
from shelterwatch.cli.services import gateway_yaml
from shelterwatch.store.sqlite import SqliteStore


@pytest.fixture
def broker(tmp_path: Path) -> MosquittoServer:
    # A broker of this test's own: it is stopped and started on purpose.
    server = MosquittoServer(tmp_path / "mosquitto")
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


def _outbox_depth(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])


async def _samples_stored(store: SqliteStore) -> int:
    kinds = ("door", "ventilation", "water", "environment", "power")
    return sum([await store.count(kind) for kind in kinds])


async def test_broker_down_loses_nothing(broker: MosquittoServer, tmp_path: Path) -> None:
    mqtt = mqtt_settings(broker.port)
    async with (
        Fleet(FleetSpec(shelters=1, sirens=0, tick_s=0.2)) as fleet,
        SqliteStore(tmp_path / "store.db") as store,
    ):
        (gw,) = gateways_for(
            fleet, mqtt, interval_s=0.25, outbox_dir=tmp_path, snapshot_interval_s=5
        )
        collector = collector_for(store, mqtt, client_id=f"sf-{uuid.uuid4().hex[:6]}")
        async with running(collector.run(), gw.run()):
            await wait_until(lambda: collector.stats.samples > 5, 20, "data flowing")
            broker.stop()
            queued_before = gw.stats.queued
            # No broker until the gateway has buffered at least 50 messages (about 20 s at
            # 4 Hz polling): what it keeps across an outage does not depend on how long that
            # was, only on how much it had to keep.
            await wait_until(
                lambda: gw.stats.queued - queued_before >= 50 and gw.outbox.depth >= 50,
                60,
                "50 messages buffered while the broker is down",
            )
            buffered = gw.outbox.depth
            assert gw.stats.queued - queued_before >= 50
            assert buffered >= 50
            broker.start()
            # Replayed, not an empty outbox: live messages pass through the outbox too, and
            # on a busy machine one is nearly always on its way (a wait for depth 0 timed out).
            await wait_until(
                lambda: gw.stats.replayed >= buffered, 60, "the outbox's backlog replayed"
            )
            await wait_until(lambda: collector.stats.missing == 0, 30, "no seq gaps left")

            async def all_stored() -> bool:
                # The collector writes in batches and acknowledges after each write: the
                # store catches up with what was published a moment later.
                return await _samples_stored(store) >= gw.stats.queued - 20

            await wait_until(all_stored, 30, "every message with values stored")
            stored = collector.stats.samples
        # Each data message with values is one sample; the store has each exactly once.
        distinct = await _samples_stored(store)
    assert collector.stats.recovered >= 1 or collector.stats.seq_gaps == 0
    assert gw.outbox.dropped == 0
    assert distinct <= stored  # redeliveries collapse; nothing appears twice
    assert distinct >= gw.stats.queued - 20  # quality-only messages carry no values


async def test_gateway_killed_while_broker_down_delivers_after_restart(
    broker: MosquittoServer, tmp_path: Path
) -> None:
    mqtt = mqtt_settings(broker.port)
    outbox = tmp_path / "gw-shelter-01.db"
    async with (
        Fleet(FleetSpec(shelters=1, sirens=0, tick_s=0.2)) as fleet,
        SqliteStore(tmp_path / "store.db") as store,
    ):
        (site,) = fleet.gateway_config(mqtt.host, mqtt.port, mqtt.prefix)
        doc = gateway_yaml(site, mqtt) | {
            "outbox": {"path": str(outbox)},
            "commands": {"replay_cache_path": str(tmp_path / "commands.db")},
            "snapshot_interval_s": 2,
        }
        for device in doc["devices"]:
            device["interval_s"] = 0.5
        config = tmp_path / "gateway.yaml"
        config.write_text(yaml.safe_dump(doc))

        def spawn() -> asyncio.Future[asyncio.subprocess.Process]:
            return asyncio.ensure_future(
                asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "shelterwatch.cli.main",
                    "gateway",
                    "--config",
                    str(config),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )

        collector = collector_for(store, mqtt, client_id=f"kill-gw-{uuid.uuid4().hex[:6]}")
        async with running(collector.run()):
            proc = await spawn()
            try:
                await wait_until(lambda: collector.stats.samples > 5, 30, "data flowing")
                broker.stop()
                await wait_until(lambda: _outbox_depth(outbox) >= 20, 30, "data buffered")
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                buffered = _outbox_depth(outbox)
                broker.start()
                proc = await spawn()
                # Every buffered message back, as replayed; not an empty outbox, which live
                # messages on their way through it can deny on a busy machine.
                await wait_until(
                    lambda: collector.stats.historical >= buffered,
                    60,
                    "the restarted gateway's backlog stored",
                )
                await wait_until(lambda: collector.stats.missing == 0, 30, "no seq gaps left")
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    await asyncio.wait_for(proc.wait(), 10)
    assert buffered >= 20
    # Every message buffered when the gateway died came back, marked as replayed.
    assert collector.stats.historical >= buffered


async def test_a_full_outbox_drops_the_oldest_and_says_so(
    broker: MosquittoServer, tmp_path: Path
) -> None:
    from gateway_state_reader import read_gateway_states

    mqtt = mqtt_settings(broker.port)
    async with (
        Fleet(FleetSpec(shelters=1, sirens=0, tick_s=0.1)) as fleet,
        SqliteStore(tmp_path / "store.db") as store,
    ):
        (gw,) = gateways_for(
            fleet,
            mqtt,
            interval_s=0.02,
            outbox_dir=tmp_path,
            snapshot_interval_s=0.01,
            state_interval_s=0.5,
            outbox={"path": str(tmp_path / "small.db"), "max_messages": 100},
        )
        collector = collector_for(store, mqtt, client_id=f"drop-{uuid.uuid4().hex[:6]}")
        async with running(collector.run(), gw.run()):
            await wait_until(lambda: collector.stats.samples > 5, 20, "data flowing")
            broker.stop()
            await wait_until(lambda: gw.outbox.dropped > 0, 30, "the outbox overflowing")
            broker.start()
            states = await read_gateway_states(
                mqtt, "gw-shelter-01", lambda s: bool(s.outbox and s.outbox.dropped > 0), timeout=20
            )
            await wait_until(lambda: collector.stats.missing > 0, 20, "the loss seen by seq")
    last = states[-1]
    assert last.outbox is not None and 0 < last.outbox.dropped <= gw.outbox.dropped
    assert last.uptime_s is not None and last.uptime_s > 0
    assert set(last.health) == {"door", "vent", "water", "env", "power"}
    assert all(h.polls > 0 and h.online for h in last.health.values())
