"""The gateway against real pymodbus servers and a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import uuid

from platform_helpers import gateways_for, mqtt_settings, running
from servers import MosquittoServer, wait_until

from firmware_sim import Fleet, FleetSpec
from shelterwatch.contract import (
    DEFAULT_PREFIX,
    DeviceData,
    DeviceState,
    GatewayState,
    TopicKind,
    parse_topic,
)
from shelterwatch.mqtt_client import Message, MqttClient


class Recorder:
    """Subscribes to everything under the prefix and keeps what arrives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.prefix = DEFAULT_PREFIX

    async def run(self, client: MqttClient, prefix: str) -> None:
        self.prefix = prefix
        await client.subscribe([f"{prefix}/#"])
        async for m in client.messages():
            self.messages.append(m)

    def of(self, kind: TopicKind, device: str = "") -> list[Message]:
        out = []
        for m in self.messages:
            t = parse_topic(m.topic, self.prefix)
            if t.kind is kind and (not device or t.device == device):
                out.append(m)
        return out


async def test_device_that_stops_answering_goes_offline_and_comes_back(
    mosquitto: MosquittoServer,
) -> None:
    # A prefix of its own: other tests leave retained device states under the default one.
    mqtt = mqtt_settings(mosquitto.port, prefix=f"gw{uuid.uuid4().hex[:8]}/v1")
    async with Fleet(FleetSpec(shelters=1, sirens=0, tick_s=0.2)) as fleet:
        (gw,) = gateways_for(fleet, mqtt, interval_s=0.2, snapshot_interval_s=5)
        rec = Recorder()
        async with (
            MqttClient(mqtt, f"rec-{uuid.uuid4().hex[:6]}") as sub,
            running(rec.run(sub, mqtt.prefix), gw.run()),
        ):

            def states(dev: str) -> list[DeviceState]:
                return [
                    DeviceState.model_validate_json(m.payload)
                    for m in rec.of(TopicKind.DEVICE_STATE, dev)
                ]

            await wait_until(lambda: any(s.online for s in states("water")), 10, "water online")
            await fleet.stop_device("shelter-01", "water")
            await wait_until(lambda: not states("water")[-1].online, 10, "water offline")
            assert states("water")[-1].error
            # Its data says every point is bad and carries no values.
            bad = [
                DeviceData.model_validate_json(m.payload)
                for m in rec.of(TopicKind.DEVICE_DATA, "water")
            ][-1]
            assert bad.values == {} and set(bad.quality) == {
                p.name for p in fleet.device("shelter-01", "water").profile.points
            }
            # The other devices keep reporting meanwhile.
            before = len(rec.of(TopicKind.DEVICE_DATA, "door"))
            await wait_until(
                lambda: len(rec.of(TopicKind.DEVICE_DATA, "door")) > before,
                10,
                "door data while water is down",
            )
            await fleet.start_device("shelter-01", "water")
            await wait_until(lambda: states("water")[-1].online, 20, "water back online")

            def last_water() -> DeviceData:
                return DeviceData.model_validate_json(
                    rec.of(TopicKind.DEVICE_DATA, "water")[-1].payload
                )

            # The state goes out first, then a full snapshot of every point, all good.
            await wait_until(lambda: last_water().full, 10, "a full snapshot of water")
            last = last_water()
            assert "tank_level" in last.values and not last.quality
    # Exactly one offline and one online transition after the first birth.
    flips = [s.online for s in states("water")]
    assert flips[-2:] == [False, True]
    assert flips.count(False) == 1


async def test_gateway_state_is_retained_and_will_marks_it_offline(
    mosquitto: MosquittoServer,
) -> None:
    # A prefix of its own: other tests' gateways leave retained states under the default one.
    mqtt = mqtt_settings(mosquitto.port, prefix=f"gs{uuid.uuid4().hex[:8]}/v1")
    async with Fleet(FleetSpec(shelters=1, sirens=0)) as fleet:
        (gw,) = gateways_for(fleet, mqtt)
        async with running(gw.run()):
            await wait_until(gw.connected.is_set, 10, "gateway connected")
            async with MqttClient(mqtt, "late-reader") as sub:
                rec = Recorder()
                async with running(rec.run(sub, mqtt.prefix)):
                    await wait_until(
                        lambda: bool(rec.of(TopicKind.GATEWAY_STATE)), 5, "retained gateway state"
                    )
                    first = rec.of(TopicKind.GATEWAY_STATE)[0]
                    assert first.retain
                    state = GatewayState.model_validate_json(first.payload)
                    assert state.online and state.site == "shelter-01"
                    assert sorted(state.devices) == ["door", "env", "power", "vent", "water"]
                    # The gateway's district goes in its state and in every data message.
                    assert state.district == fleet.district("shelter-01") == "xihu"
                    await wait_until(
                        lambda: bool(rec.of(TopicKind.DEVICE_DATA)), 5, "data messages"
                    )
                    data = [
                        DeviceData.model_validate_json(m.payload)
                        for m in rec.of(TopicKind.DEVICE_DATA)
                    ]
                    assert {(d.site, d.district) for d in data} == {("shelter-01", "xihu")}
        # A clean stop publishes offline.
        async with MqttClient(mqtt, "after") as sub:
            rec = Recorder()
            async with running(rec.run(sub, mqtt.prefix)):
                await wait_until(lambda: bool(rec.of(TopicKind.GATEWAY_STATE)), 5, "state")
                doc = json.loads(rec.of(TopicKind.GATEWAY_STATE)[0].payload)
                assert doc["online"] is False


async def test_block_reads_and_broker_restart(mosquitto: MosquittoServer) -> None:
    mqtt = mqtt_settings(mosquitto.port, prefix=f"gw{uuid.uuid4().hex[:8]}/v1")
    async with Fleet(FleetSpec(shelters=1, sirens=1)) as fleet:
        gws = gateways_for(fleet, mqtt)
        # A 9-point ventilation profile takes 3 requests (holding, coil, input), not 9.
        vent = next(p for g in gws for p in g.pollers if p.config.id == "vent")
        assert vent.requests_per_poll == 3
        async with running(*(g.run() for g in gws)):
            await wait_until(lambda: all(g.connected.is_set() for g in gws), 10, "connected")
            mosquitto.restart()
            await wait_until(
                lambda: all(g.stats.connects >= 2 for g in gws),
                20,
                "gateways reconnected by themselves",
            )
            published = [g.stats.published for g in gws]
            await wait_until(
                lambda: all(g.stats.published > n for g, n in zip(gws, published, strict=True)),
                10,
                "publishing again",
            )
    await asyncio.sleep(0)
