"""The collector is killed while an alert's duration timer runs: the alert is raised on time,
once, by the restarted collector."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from pathlib import Path

import yaml
from platform_helpers import mqtt_settings, running
from servers import MosquittoServer, wait_until

from shelterwatch.contract import Alert, DeviceData, alert_topic, data_topic
from shelterwatch.mqtt_client import Message, MqttClient

FOR_S = 4.0


async def test_killed_mid_timer_the_alert_is_raised_on_time_once(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    mqtt = mqtt_settings(mosquitto.port, prefix=f"k{uuid.uuid4().hex[:6]}/v1")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {
                        "name": "humidity_high",
                        "kind": "threshold",
                        "severity": "minor",
                        "device_kind": "environment",
                        "point": "humidity",
                        "above": 75,
                        "for_s": FOR_S,
                    }
                ]
            }
        )
    )
    state = tmp_path / "alert-state.db"
    config = tmp_path / "collector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "mqtt": {
                    "host": "127.0.0.1",
                    "port": mosquitto.port,
                    "prefix": mqtt.prefix,
                    "reconnect_max_s": 1.0,
                },
                "client_id": f"kill-alert-{uuid.uuid4().hex[:6]}",
                "store_url": f"sqlite:///{tmp_path / 'store.db'}",
                "batch_wait_s": 0.05,
                "alerts": {
                    "enabled": True,
                    "rules_path": str(rules),
                    "state_path": str(state),
                    "tick_s": 0.1,
                },
            }
        )
    )

    def spawn() -> asyncio.Future[asyncio.subprocess.Process]:
        return asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "shelterwatch.cli.main",
                "collector",
                "--config",
                str(config),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )

    topic = alert_topic("shelter-01", "humidity_high", "env", mqtt.prefix)
    seen: list[tuple[float, Message]] = []

    async def watch(client: MqttClient) -> None:
        await client.subscribe([topic])
        async for message in client.messages():
            if message.payload:
                seen.append((time.time(), message))

    seq = 0

    async def humid(client: MqttClient) -> int:
        nonlocal seq
        ts = time.time_ns() // 1_000_000
        data = DeviceData(
            ts=ts, seq=seq, site="shelter-01", kind="environment", values={"humidity": 82.0}
        )
        seq += 1
        await client.publish(data_topic("gw-shelter-01", "env", mqtt.prefix), data.to_json())
        return ts

    async with (
        MqttClient(mqtt, f"watch-{uuid.uuid4().hex[:6]}") as watcher,
        MqttClient(mqtt, f"gw-{uuid.uuid4().hex[:6]}") as gateway,
        running(watch(watcher)),
    ):
        proc = await spawn()
        try:
            # The collector's session exists once its state file does.
            await wait_until(state.exists, 30, "the collector running")
            first_ts = await humid(gateway)
            # Let it take the first reading (the timer starts), then kill it mid-timer.
            await wait_until(lambda: time.time() * 1000 >= first_ts + 1500, 5, "timer running")
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            assert not seen, "raised before the timer ran out"
            # Readings keep coming while the collector is dead; the broker queues them.
            for _ in range(3):
                await humid(gateway)
                await asyncio.sleep(0.3)
            proc = await spawn()
            due = first_ts + FOR_S * 1000
            await wait_until(lambda: bool(seen), 30, "the alert raised after the restart")
            for _ in range(6):  # more readings: the condition still holds, nothing new
                await humid(gateway)
                await asyncio.sleep(0.3)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 10)
    raises = [Alert.model_validate_json(m.payload) for _, m in seen]
    assert len(raises) == 1, raises
    alert = raises[0]
    assert alert.active
    # On time: the timer kept the start it had before the kill.
    assert alert.raised_ts == due
    arrived = seen[0][0] * 1000
    assert arrived - due < 10_000, "raised long after it was due"
