"""A site's posture, published retained as the control service does, reaches the collector's
alert engine, which gates its posture rules on it (docs/conversion.md, docs/alerts.md).

Real Mosquitto, a real collector with its alert engine. The posture is published before the
collector subscribes, so the test also proves the retained message is what a starting
collector reads; then a change while it runs; then a malformed message, which changes
nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from platform_helpers import collector_for, mqtt_settings, running
from servers import MosquittoServer, wait_until

from shelterwatch.contract import SitePosture, posture_topic
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.store.sqlite import SqliteStore

pytestmark = pytest.mark.integration


async def test_the_declared_posture_reaches_the_alert_engine(
    mosquitto: MosquittoServer, sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    mqtt = mqtt_settings(mosquitto.port, prefix=f"t{uuid.uuid4().hex[:6]}/v1")
    collector = collector_for(
        sqlite_store,
        mqtt,
        client_id=f"c-{uuid.uuid4().hex[:8]}",
        alerts={"enabled": True, "state_path": str(tmp_path / "alert-state.db")},
    )
    assert collector.alerts is not None

    async def posture(site: str) -> str:
        assert collector.alerts is not None
        return (await collector.alerts.engine()).posture(site)

    async def is_(site: str, value: str) -> bool:
        return await posture(site) == value

    def declare(site: str, value: str) -> bytes:
        return SitePosture.model_validate(
            {"posture": value, "ts": 1_758_160_800_000, "order": "cv-test", "kind": "drill"}
        ).to_json()

    async with MqttClient(mqtt, f"control-{uuid.uuid4().hex[:8]}") as control:
        topic = posture_topic("shelter-01", mqtt.prefix)
        # Before the collector exists: only the retained copy can tell it.
        await control.publish(topic, declare("shelter-01", "converting"), retain=True)
        try:
            async with running(collector.run()):
                await wait_until(collector.subscribed.is_set, 10, "the collector subscribed")
                await _eventually(
                    lambda: is_("shelter-01", "converting"), "the retained posture in the engine"
                )

                await control.publish(topic, declare("shelter-01", "wartime"), retain=True)
                await _eventually(lambda: is_("shelter-01", "wartime"), "the new posture")

                # Malformed: logged and dropped; the site keeps what it had, and other sites
                # keep their default.
                await control.publish(topic, b'{"posture": "at war"}', retain=True)
                await control.publish(
                    posture_topic("shelter-02", mqtt.prefix), b"not json", retain=True
                )
                marker = posture_topic("shelter-03", mqtt.prefix)
                await control.publish(marker, declare("shelter-03", "converting"), retain=True)
                await _eventually(
                    lambda: is_("shelter-03", "converting"), "the marker after the bad messages"
                )
                assert await posture("shelter-01") == "wartime"
                assert await posture("shelter-02") == "peacetime"
        finally:
            # Retained messages outlive the test: clear them for the next run.
            for site in ("shelter-01", "shelter-02", "shelter-03"):
                await control.publish(posture_topic(site, mqtt.prefix), b"", retain=True)


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)
