"""SIGKILL mid-batch: the gateway and the collector, real processes, each killed and restarted.

Existing tests kill the collector under a synthetic load (test_collector_durability.py) and
the gateway while the broker is down (test_store_and_forward.py). Here both run as the
commands an operator starts, against the simulator, and are killed while messages are in
flight: the gateway with PUBACKs outstanding, the collector with a batch received but not
yet acknowledged. A monitor subscriber notes every seq that reached the broker; at the end
every seq from 0 up is there and the store holds each reading exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import sys
import uuid
from pathlib import Path

import yaml
from fault_ledger import Monitor, compare, store_rows
from platform_helpers import mqtt_settings, running
from servers import MosquittoServer, wait_until

from firmware_sim import Fleet, FleetSpec
from shelterwatch.cli.services import gateway_yaml

GATEWAY = "gw-shelter-01"


async def _spawn(service: str, config: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shelterwatch.cli.main",
            service,
            "--config",
            str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
        )


async def _stop(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    if proc.returncode is None:
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _count(path: Path) -> int:
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path)) as db:
        try:
            return int(db.execute("SELECT count(*) FROM samples").fetchone()[0])
        except sqlite3.OperationalError:
            return 0  # the collector has not created its table yet


async def test_gateway_and_collector_killed_mid_batch_store_every_seq_once(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    mqtt = mqtt_settings(mosquitto.port)
    store = tmp_path / "store.db"
    async with Fleet(FleetSpec(shelters=1, sirens=0, tick_s=0.05)) as fleet:
        (site,) = fleet.gateway_config(mqtt.host, mqtt.port, mqtt.prefix)
        gw_doc = gateway_yaml(site, mqtt) | {
            "outbox": {"path": str(tmp_path / "outbox.db")},
            "commands": {"replay_cache_path": str(tmp_path / "commands.db")},
            "snapshot_interval_s": 0.001,  # every poll a full message with values
        }
        for device in gw_doc["devices"]:
            device["interval_s"] = 0.05
        gw_config = tmp_path / "gateway.yaml"
        gw_config.write_text(yaml.safe_dump(gw_doc))
        col_config = tmp_path / "collector.yaml"
        col_config.write_text(
            yaml.safe_dump(
                {
                    "mqtt": {"host": mqtt.host, "port": mqtt.port, "reconnect_max_s": 1.0},
                    "client_id": f"kill-{uuid.uuid4().hex[:6]}",
                    "store_url": f"sqlite:///{store}",
                    # Batches gather for 0.3 s: a kill lands in one almost surely.
                    "batch_wait_s": 0.3,
                    "spool": {"path": str(tmp_path / "spool.db")},
                }
            )
        )
        log = tmp_path / "services.log"
        monitor = Monitor(mqtt, GATEWAY)
        async with running(monitor.run()):
            await wait_until(monitor.subscribed.is_set, 10, "monitor subscribed")
            collector = await _spawn("collector", col_config, log)
            # Its session must exist before the first message, or the broker has no queue
            # to keep that message in.
            await wait_until(
                lambda: log.read_bytes().count(b"subscribed at") >= 1, 30, "collector subscribed"
            )
            gateway = await _spawn("gateway", gw_config, log)
            try:
                await wait_until(lambda: _count(store) > 1000, 30, "data stored")
                gateway.send_signal(signal.SIGKILL)
                await gateway.wait()
                gateway = await _spawn("gateway", gw_config, log)
                mark = _count(store) + 1000
                await wait_until(lambda: _count(store) > mark, 30, "data after the gateway restart")
                collector.send_signal(signal.SIGKILL)
                await collector.wait()
                collector = await _spawn("collector", col_config, log)
                mark = _count(store) + 1000
                await wait_until(
                    lambda: _count(store) > mark, 30, "data after the collector restart"
                )
                # Silence the devices: the gateway reports them offline once and then has
                # nothing more to send, so its outbox runs empty and stays empty.
                await fleet.fault("shelter-01", "comm_loss")
                await wait_until(
                    lambda: _outbox_depth(tmp_path / "outbox.db") == 0, 30, "outbox drained"
                )
                await _stop(gateway, signal.SIGINT)
                expected = monitor.ledger.expected_rows()
                try:
                    await wait_until(
                        lambda: not compare(expected, store_rows(store))["lost"],
                        30,
                        "every reading in the store",
                    )
                except AssertionError:
                    lost = compare(expected, store_rows(store))["lost"]
                    raise AssertionError(
                        f"{len(lost)} of {len(expected)} readings not stored, e.g. "
                        f"{sorted(lost)[:5]}; log {log}"
                    ) from None
            finally:
                await _stop(gateway, signal.SIGINT)
                await _stop(collector, signal.SIGTERM)
    seqs = monitor.ledger.seqs(GATEWAY)
    assert seqs == list(range(len(seqs))), "a seq never reached the broker"
    # The killed gateway's unremoved messages came back as replays: the kill was mid-flight.
    assert monitor.ledger.historical > 0
    assert compare(expected, store_rows(store)) == {"lost": {}, "duplicated": {}}


def _outbox_depth(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
