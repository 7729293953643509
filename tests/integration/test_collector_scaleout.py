"""Collectors scale out through an MQTT shared subscription, and a killed member loses nothing.

Against the real Mosquitto (2.0.11 here) and InfluxDB. What the broker does with a dead member
of a shared group is part of what is tested: Mosquitto keeps dealing the group's messages to the
dead member's persistent session and does not hand its unacknowledged ones to the live member,
so the store is whole only once the killed collector is back with the same client id
(docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections import defaultdict
from pathlib import Path

import yaml
from platform_helpers import collector_for, mqtt_settings, running
from servers import InfluxServer, MosquittoServer, wait_until

from collector import CollectorSettings
from shelterwatch.config import MqttSettings
from shelterwatch.contract import DeviceData, data_topic
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.store.influx import InfluxStore, quote_ident

T0 = 1_700_000_000_000
GATEWAYS = ("gw-a", "gw-b", "gw-c", "gw-d")
DEVICES = ("env", "vent")


def _messages(total: int) -> list[tuple[str, bytes]]:
    """``total`` data messages spread over gateways and devices; ``n`` carries each gateway's
    seq, and ts = T0 + seq makes every message its own point."""
    seqs: dict[str, int] = defaultdict(int)
    out = []
    for i in range(total):
        gw = GATEWAYS[i % len(GATEWAYS)]
        dev = DEVICES[(i // len(GATEWAYS)) % len(DEVICES)]
        seq = seqs[gw]
        seqs[gw] += 1
        payload = DeviceData(
            ts=T0 + seq,
            seq=seq,
            site=f"site-{gw}",
            kind="environment",
            values={"n": seq, "co2": 0.04},
        ).to_json()
        out.append((data_topic(gw, dev), payload))
    return out


async def _publish(mqtt: MqttSettings, messages: list[tuple[str, bytes]]) -> None:
    async with MqttClient(mqtt, f"pub-{uuid.uuid4().hex[:8]}") as pub:
        pending = []
        for topic, payload in messages:
            await pub.inflight.acquire()
            fut = pub.start_publish(topic, payload)
            fut.add_done_callback(lambda _f: pub.inflight.release())
            pending.append(fut)
        await asyncio.gather(*pending)


async def _join_group(mqtt: MqttSettings, settings: CollectorSettings) -> None:
    """Create a member's session and its subscriptions at the broker, then leave.

    From then on the broker queues the member's share for it, so the test does not race the
    subprocess's start-up.
    """
    async with MqttClient(mqtt, settings.client_id, persistent=True) as client:
        await client.subscribe(settings.topic_filters(), qos=1)


async def _seqs(store: InfluxStore) -> dict[tuple[str, str], list[int]]:
    """Every stored ``n`` per (gateway, device), in time order."""
    results = await store.query(
        f"SELECT {quote_ident('n')} FROM {quote_ident('environment')} "
        f"GROUP BY {quote_ident('gateway')}, {quote_ident('device')}"
    )
    out: dict[tuple[str, str], list[int]] = {}
    for series in results[0].get("series", []):
        tags = series["tags"]
        out[(tags["gateway"], tags["device"])] = [int(row[1]) for row in series["values"]]
    return out


def _expected(total: int) -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = defaultdict(list)
    for topic, payload in _messages(total):
        parts = topic.split("/")
        out[(parts[-4], parts[-2])].append(DeviceData.model_validate_json(payload).seq)
    return dict(out)


async def test_two_collectors_in_a_group_split_the_load(
    mosquitto: MosquittoServer, influx_store: InfluxStore
) -> None:
    mqtt = mqtt_settings(mosquitto.port)
    group = f"g{uuid.uuid4().hex[:8]}"
    members = [
        collector_for(influx_store, mqtt, client_id=f"{group}-{i}", shared_group=group)
        for i in (1, 2)
    ]
    total = 2000
    async with running(*(m.run() for m in members)):
        for m in members:
            await wait_until(m.subscribed.is_set, timeout=10, what="member subscribed")
        await _publish(mqtt, _messages(total))
        await wait_until(
            lambda: sum(m.ingest.stats.samples for m in members) >= total,
            timeout=30,
            what=f"{total} messages taken by the group",
        )
        await asyncio.sleep(0.3)  # a message delivered to both would show up now
    shares = [m.ingest.stats.samples for m in members]
    assert sum(shares) == total, shares
    # Mosquitto deals round robin; anything far from half means one member idles.
    assert min(shares) >= total * 0.3, shares
    assert all(m.ingest.stats.missing == 0 for m in members)
    assert await _seqs(influx_store) == _expected(total)


def _config(path: Path, mqtt: MqttSettings, client_id: str, store_url: str, group: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "mqtt": mqtt.model_dump(),
                "client_id": client_id,
                "store_url": store_url,
                "shared_group": group,
                "batch_messages": 300,
                "batch_wait_s": 0.05,
            }
        ),
        encoding="utf-8",
    )
    return path


async def _spawn(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shelterwatch.cli.main",
        "collector",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_a_member_killed_under_load_loses_nothing_once_it_is_back(
    mosquitto: MosquittoServer, influxdb: InfluxServer, tmp_path: Path
) -> None:
    mqtt = mqtt_settings(mosquitto.port)
    group = f"g{uuid.uuid4().hex[:8]}"
    database = f"scale_{uuid.uuid4().hex[:8]}"
    url = f"{influxdb.url.replace('http://', 'influxdb://')}/{database}"
    total = 6000
    configs = []
    for name in ("a", "b"):
        client_id = f"{group}-{name}"
        await _join_group(
            mqtt, CollectorSettings(mqtt=mqtt, client_id=client_id, shared_group=group)
        )
        configs.append(_config(tmp_path / f"{name}.yaml", mqtt, client_id, url, group))

    async with InfluxStore(influxdb.url, database) as store:
        a, b = await _spawn(configs[0]), await _spawn(configs[1])
        try:
            publisher = asyncio.create_task(_publish(mqtt, _messages(total)))
            await wait_until(
                lambda: _stored_at_least(store, 1000), timeout=30, what="first batches stored"
            )
            a.send_signal(signal.SIGKILL)  # no DISCONNECT, batches in flight, acks unsent
            await a.wait()
            await publisher  # the broker accepted every message
            # b drains its share and stops there: a's share waits in a's session.
            stable = await _settled(store)
            assert stable < total, "the broker handed the dead member's messages on after all"
            a = await _spawn(configs[0])  # same client id: its session, and its share, resume
            await wait_until(
                lambda: _stored_at_least(store, total),
                timeout=60,
                what=f"all {total} messages stored once the killed member is back",
            )
            await asyncio.sleep(0.5)
            assert await _seqs(store) == _expected(total)  # no gap, no extra point
        finally:
            await _stop(a)
            await _stop(b)
            await store.drop_database()


async def _stored(store: InfluxStore) -> int:
    seqs = await _seqs(store)
    return sum(len(v) for v in seqs.values())


async def _stored_at_least(store: InfluxStore, n: int) -> bool:
    return await _stored(store) >= n


async def _settled(store: InfluxStore) -> int:
    """The stored count once it has not moved for a second."""
    last, still = -1, 0
    for _ in range(200):
        now = await _stored(store)
        still = still + 1 if now == last else 0
        if still >= 4:
            return now
        last = now
        await asyncio.sleep(0.25)
    raise AssertionError("the stored count never settled")
