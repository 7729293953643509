"""Oversized payloads and topic floods at the collector: counted, dropped, and good data still
stored. The broker's own size limit (deploy/mosquitto/mosquitto.conf) is checked too."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from platform_helpers import collector_for, mqtt_settings, running
from servers import MosquittoServer, wait_until

from shelterwatch.contract import DeviceData, data_topic
from shelterwatch.errors import ConnectError, PublishRefused
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.store import TimeSeriesStore

T0 = 1_700_000_000_000
TEN_MB = b'{"ts": 1700000000000, "seq": 1, "values": {"x": "' + b"A" * 10_000_000 + b'"}}'


def _good(i: int) -> bytes:
    return DeviceData(
        ts=T0 + i, seq=i, site="s-1", kind="environment", values={"co2": 0.04}
    ).to_json()


DEPLOY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"


class LimitedMosquitto(MosquittoServer):
    """The test broker with the size limit of the deploy config (deploy/mosquitto)."""

    def _write_config(self) -> None:
        super()._write_config()
        limits = [
            line
            for line in DEPLOY_CONF.read_text(encoding="utf-8").splitlines()
            if line.startswith(("message_size_limit", "max_packet_size"))
        ]
        with open(self.conf_path, "a", encoding="utf-8") as conf:
            conf.write("".join(f"{line}\n" for line in limits))


@pytest.fixture
def limited_broker(tmp_path: Path) -> Iterator[MosquittoServer]:
    server = LimitedMosquitto(tmp_path / "mosquitto")
    server.start()
    yield server
    server.stop()


async def _publish_many(client: MqttClient, messages: Iterator[tuple[str, bytes]]) -> None:
    pending = []
    for topic, payload in messages:
        await client.inflight.acquire()
        fut = client.start_publish(topic, payload)
        fut.add_done_callback(lambda _f: client.inflight.release())
        pending.append(fut)
    await asyncio.gather(*pending)


async def test_oversized_payload_is_counted_and_ingest_goes_on(
    mosquitto: MosquittoServer, sqlite_store: TimeSeriesStore
) -> None:
    # This broker has no size limit: the collector's own limit must hold.
    mqtt = mqtt_settings(mosquitto.port)
    collector = collector_for(sqlite_store, mqtt, client_id=f"big-{uuid.uuid4().hex[:6]}")
    topic = data_topic("gw-big", "env")
    async with running(collector.run()):
        await wait_until(collector.subscribed.is_set, 10, "collector subscribed")
        async with MqttClient(mqtt, f"pub-{uuid.uuid4().hex[:6]}") as pub:
            await pub.publish(topic, _good(0))
            started = time.monotonic()
            await pub.publish(topic, TEN_MB)
            await pub.publish(topic, _good(2))
        await wait_until(lambda: collector.stats.oversized == 1, 20, "the 10 MB payload counted")
        await wait_until(lambda: collector.stats.samples == 2, 10, "the good messages stored")
        took = time.monotonic() - started
    assert await sqlite_store.count("environment") == 2
    assert collector.stats.malformed == 0
    assert took < 10


async def test_the_broker_refuses_oversized_publishes(
    limited_broker: MosquittoServer, sqlite_store: TimeSeriesStore
) -> None:
    mqtt = mqtt_settings(limited_broker.port)
    collector = collector_for(sqlite_store, mqtt, client_id=f"lim-{uuid.uuid4().hex[:6]}")
    topic = data_topic("gw-big", "env")
    async with running(collector.run()):
        await wait_until(collector.subscribed.is_set, 10, "collector subscribed")
        async with MqttClient(mqtt, f"pub-{uuid.uuid4().hex[:6]}") as pub:
            # MQTT 5: a PUBACK with an error reason code, which the gateway logs and counts
            # as refused (gateway/service.py) instead of resending it forever.
            with pytest.raises((PublishRefused, ConnectError)):
                await pub.publish(topic, TEN_MB)
        async with MqttClient(mqtt, f"pub-{uuid.uuid4().hex[:6]}") as pub:
            await pub.publish(topic, _good(1))
        await wait_until(lambda: collector.stats.samples == 1, 10, "good data after it")
    assert collector.stats.oversized == 0  # it never reached the collector


async def test_a_flood_of_100k_topics_is_counted_and_good_data_still_stored(
    mosquitto: MosquittoServer, sqlite_store: TimeSeriesStore
) -> None:
    mqtt = mqtt_settings(mosquitto.port)
    collector = collector_for(sqlite_store, mqtt, client_id=f"flood-{uuid.uuid4().hex[:6]}")
    flood = 100_000
    prefix = mqtt.prefix

    def messages() -> Iterator[tuple[str, bytes]]:
        for i in range(flood):
            # Inside the subscription, but no contract topic: a device id is no slug.
            yield f"{prefix}/gw/gw-flood/dev/Bad.{i}/data", b"{}"
            if i % 10_000 == 0:
                yield data_topic("gw-good", "env"), _good(i)

    async with running(collector.run()):
        await wait_until(collector.subscribed.is_set, 10, "collector subscribed")
        async with MqttClient(mqtt, f"flood-{uuid.uuid4().hex[:6]}") as pub:
            await _publish_many(pub, messages())
        await wait_until(
            lambda: collector.stats.unknown_topic + collector.stats.malformed >= flood,
            60,
            "every flood message counted",
        )
        await wait_until(lambda: collector.stats.samples == 10, 10, "the good data stored")
    assert await sqlite_store.count("environment") == 10
    # Log lines for distinct bad topics are capped: a flood cannot grow memory without end.
    assert len(collector.ingest._warned) <= 10_000
