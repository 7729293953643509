"""The collector keeps its promise: nothing the broker accepted is lost, bad input is counted."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from platform_helpers import collector_for, mqtt_settings, running
from servers import InfluxServer, MosquittoServer, wait_until

from shelterwatch.contract import DeviceData, data_topic
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.store import TimeSeriesStore
from shelterwatch.store.factory import open_store

T0 = 1_700_000_000_000


def _message(i: int) -> bytes:
    return DeviceData(
        ts=T0 + i,
        seq=i,
        site="shelter-01",
        kind="environment",
        values={"co2": 0.04 + i * 1e-6, "o2": 20.9, "temperature": 18.5, "humidity": 61.0},
    ).to_json()


async def _publish(port: int, count: int, start: int = 0) -> None:
    async with MqttClient(mqtt_settings(port), f"pub-{uuid.uuid4().hex[:8]}") as pub:
        topic = data_topic("gw-load", "env")
        pending = []
        for i in range(start, start + count):
            await pub.inflight.acquire()
            fut = pub.start_publish(topic, _message(i))
            fut.add_done_callback(lambda _f: pub.inflight.release())
            pending.append(fut)
        await asyncio.gather(*pending)


def _spawn_collector(config: Path) -> asyncio.subprocess.Process:
    return asyncio.create_subprocess_exec(  # type: ignore[return-value]
        sys.executable,
        "-m",
        "shelterwatch.cli.main",
        "collector",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.parametrize("backend", ["sqlite", "influx"])
async def test_collector_killed_under_load_loses_nothing(
    backend: str, mosquitto: MosquittoServer, influxdb: InfluxServer, tmp_path: Path
) -> None:
    total = 6000
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = f"{influxdb.url.replace('http://', 'influxdb://')}/kill_{uuid.uuid4().hex[:8]}"
    config = tmp_path / "collector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "reconnect_max_s": 1.0},
                "client_id": f"kill-{uuid.uuid4().hex[:8]}",
                "store_url": url,
                "batch_messages": 500,
                "batch_wait_s": 0.05,
            }
        )
    )
    async with open_store(url) as store:
        proc = await _spawn_collector(config)
        try:
            # Message 0 is sent until it is stored: then the collector's session exists and
            # queues everything else. Resending it is harmless, since stores are idempotent.
            async def first_stored() -> bool:
                await _publish(mosquitto.port, 1)
                return await _count_at_least(store, 1)

            await wait_until(first_stored, timeout=30, interval=0.5, what="collector running")
            publisher = asyncio.create_task(_publish(mosquitto.port, total - 1, start=1))
            # Kill it mid-stream: some batches are stored, some acked, some in flight.
            await wait_until(
                lambda: _count_at_least(store, 1000), timeout=30, what="first batches stored"
            )
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            await publisher  # the broker accepted every message (PUBACK)
            stored_while_dead = await store.count("environment")
            assert stored_while_dead < total
            proc = await _spawn_collector(config)
            await wait_until(
                lambda: _count_at_least(store, total),
                timeout=60,
                what=f"all {total} messages stored after the restart",
            )
            await asyncio.sleep(0.5)  # a straggling duplicate would show up now
            assert await store.count("environment") == total
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _count_at_least(store: TimeSeriesStore, n: int) -> bool:
    return await store.count("environment") >= n


async def test_malformed_payloads_are_counted_and_ingest_goes_on(
    mosquitto: MosquittoServer, sqlite_store: TimeSeriesStore
) -> None:
    mqtt = mqtt_settings(mosquitto.port)
    collector = collector_for(sqlite_store, mqtt, client_id=f"bad-{uuid.uuid4().hex[:8]}")
    async with running(collector.run()):
        await wait_until(collector.subscribed.is_set, timeout=10, what="collector subscribed")
        topic = data_topic("gw-bad", "env")
        async with MqttClient(mqtt, "pub-bad") as pub:
            await pub.publish(topic, _message(0))
            await pub.publish(topic, b"\xff\xfe not json")
            await pub.publish(topic, json.dumps({"ts": -5, "seq": 1}).encode())
            await pub.publish(
                f"{mqtt.prefix}/gw/gw-bad/dev/env/data",
                json.dumps({"ts": T0, "seq": 2, "values": {"x": [1, 2]}}).encode(),
            )
            await pub.publish(topic, _message(3))
        await wait_until(
            lambda: _count_at_least(sqlite_store, 2), timeout=10, what="the good messages stored"
        )
        await wait_until(
            lambda: collector.stats.malformed == 3,
            timeout=5,
            what="three malformed messages counted",
        )
    assert await sqlite_store.count("environment") == 2
    assert collector.stats.samples == 2


async def test_collector_rides_out_a_broker_restart(
    mosquitto: MosquittoServer, sqlite_store: TimeSeriesStore
) -> None:
    mqtt = mqtt_settings(mosquitto.port)
    collector = collector_for(sqlite_store, mqtt, client_id=f"rs-{uuid.uuid4().hex[:8]}")
    async with running(collector.run()):
        await wait_until(collector.subscribed.is_set, timeout=10, what="collector subscribed")
        await _publish(mosquitto.port, 100)
        await wait_until(lambda: _count_at_least(sqlite_store, 100), timeout=10, what="100")
        mosquitto.restart()
        await _publish(mosquitto.port, 100, start=100)
        await wait_until(
            lambda: _count_at_least(sqlite_store, 200),
            timeout=30,
            what="messages after the broker restart stored",
        )
    assert await sqlite_store.count("environment") == 200
