"""Alerts end to end against a real Mosquitto: data in, retained alert out, cleared again."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

from platform_helpers import collector_for, mqtt_settings, running
from servers import MosquittoServer, wait_until

from shelterwatch.config import MqttSettings
from shelterwatch.contract import Alert, DeviceData, Value, alert_topic, data_topic
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.store.sqlite import SqliteStore


async def retained(mqtt: MqttSettings, topic: str, wait_s: float = 0.5) -> list[bytes]:
    """What a console that connects now gets on ``topic``: the retained message, if any."""
    got: list[bytes] = []
    async with MqttClient(mqtt, f"probe-{uuid.uuid4().hex[:8]}") as probe:
        await probe.subscribe([topic])

        async def collect() -> None:
            async for message in probe.messages():
                if message.retain:
                    got.append(message.payload)

        try:
            async with asyncio.timeout(wait_s):
                await collect()
        except TimeoutError:
            pass
    return got


async def test_samples_raise_a_retained_alert_and_the_clear_removes_it(
    mosquitto: MosquittoServer, sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    mqtt = mqtt_settings(mosquitto.port, prefix=f"t{uuid.uuid4().hex[:6]}/v1")
    site, gw, dev = "post-01", "gw-alerts", "siren-1"
    topic = alert_topic(site, "siren_amplifier_fault", dev, mqtt.prefix)
    collector = collector_for(
        sqlite_store,
        mqtt,
        client_id=f"c-{uuid.uuid4().hex[:8]}",
        alerts={"enabled": True, "state_path": str(tmp_path / "alert-state.db"), "tick_s": 0.1},
    )
    live: list[tuple[bytes, bool]] = []

    async def listen() -> None:
        async with MqttClient(mqtt, f"console-{uuid.uuid4().hex[:8]}") as console:
            await console.subscribe([topic])
            async for message in console.messages():
                live.append((message.payload, message.retain))

    async with running(collector.run(), listen()), MqttClient(mqtt, "gw-sim") as gateway:
        await wait_until(collector.subscribed.is_set, 10, "the collector subscribed")
        await asyncio.sleep(0.2)  # the console's subscription
        seq = 0

        async def send(**values: Value) -> None:
            nonlocal seq
            data = DeviceData(
                ts=time.time_ns() // 1_000_000, seq=seq, site=site, kind="siren", values=values
            )
            seq += 1
            await gateway.publish(data_topic(gw, dev, mqtt.prefix), data.to_json())

        await send(amplifier_fault=False, ac_power=True, battery_voltage=26.8)
        await send(amplifier_fault=True)
        await wait_until(lambda: any(p for p, _ in live), 10, "the raised alert")
        [payload] = await retained(mqtt, topic)
        alert = Alert.model_validate_json(payload)
        assert alert.active and alert.severity == "critical" and alert.kind == "threshold"
        assert alert.point == "amplifier_fault" and alert.raised_ts == alert.ts
        assert json.loads(payload)["value"] is True

        await send(amplifier_fault=False)
        await wait_until(lambda: len(live) >= 3, 10, "the cleared alert and the removal")
        cleared = Alert.model_validate_json(live[1][0])
        assert not cleared.active and cleared.raised_ts == alert.raised_ts
        assert live[1][1] is False  # the cleared message is not retained
        assert live[2][0] == b""  # then the retained raise is removed
        assert await retained(mqtt, topic) == []

        # Both events are stored, through the store interface, next to the readings.
        await wait_until(lambda: _count(sqlite_store, site), 10, "two alert events in the store")
        assert collector.alerts is not None and collector.alerts.published == 2


async def _count(store: SqliteStore, site: str) -> bool:
    count: int = await store.count("alert", site)
    return count == 2


async def test_a_gateway_will_raises_gateway_offline_and_the_state_survives_a_restart(
    mosquitto: MosquittoServer, sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    mqtt = mqtt_settings(mosquitto.port, prefix=f"t{uuid.uuid4().hex[:6]}/v1")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - {name: gateway_offline, kind: offline, target: gateway, severity: critical,"
        " for_s: 0.3}\n",
        encoding="utf-8",
    )
    alerts = {
        "enabled": True,
        "rules_path": str(rules),
        "state_path": str(tmp_path / "state.db"),
        "tick_s": 0.1,
    }
    client_id = f"c-{uuid.uuid4().hex[:8]}"
    topic = alert_topic("shelter-07", "gateway_offline", "gw-07", mqtt.prefix)
    state = f"{mqtt.prefix}/gw/gw-07/state"
    now = time.time_ns() // 1_000_000
    first = collector_for(sqlite_store, mqtt, client_id=client_id, alerts=alerts)
    async with running(first.run()), MqttClient(mqtt, "gw-07") as gateway:
        await wait_until(first.subscribed.is_set, 10, "the collector subscribed")
        # The will the broker publishes when the gateway dies: offline, retained.
        will = {"online": False, "ts": now, "site": "shelter-07"}
        await gateway.publish(state, json.dumps(will).encode(), retain=True)

        async def raised() -> bool:
            return len(await retained(mqtt, topic, 0.2)) == 1

        await wait_until(raised, 10, "the retained gateway_offline alert")
        raised_ts = Alert.model_validate_json((await retained(mqtt, topic))[0]).raised_ts
        assert raised_ts == now + 300
    assert first.alerts is not None and first.alerts.published == 1

    # A new collector process: the alert is neither raised again nor forgotten.
    second = collector_for(sqlite_store, mqtt, client_id=client_id, alerts=alerts)
    async with running(second.run()), MqttClient(mqtt, "gw-07b") as gateway:
        await wait_until(second.subscribed.is_set, 10, "the collector subscribed again")
        await asyncio.sleep(0.5)  # the retained will is delivered again on subscribe
        assert second.alerts is not None and second.alerts.published == 0
        birth = {"online": True, "ts": now + 1000, "site": "shelter-07"}
        await gateway.publish(state, json.dumps(birth).encode(), retain=True)
        await wait_until(
            lambda: second.alerts is not None and second.alerts.published == 1, 10, "the clear"
        )
        assert await retained(mqtt, topic) == []
        await gateway.publish(state, b"", retain=True)
