"""Signed siren commands through a real Mosquitto to a real gateway and simulated sirens.

The fleet serves 20 controllers with built-in signals (two banks of 10 units, one TCP server
each) and 2 relay sirens, all behind one gateway. The controllers hold a short custom table
(signal 2 is 0.4 s on, 0.3 s off, twice), so a whole signal takes about a second. Outcomes are
asserted on the acks; sound is asserted on the simulator's timelines, which record when each
siren actually made sound.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from platform_helpers import mqtt_settings, running
from servers import MosquittoServer, free_port, wait_until

from firmware_sim import Fleet, FleetSpec
from gateway import Gateway, GatewaySettings
from shelterwatch.config import MqttSettings
from shelterwatch.contract import (
    CommandAck,
    CommandRequest,
    SignalSegment,
    SignalSpec,
    SirenKind,
    SirenOrder,
    cmd_ack_topic,
    cmd_topic,
)
from shelterwatch.errors import ConnectError
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.signing import generate_keypair, load_private_key, sign_command

pytestmark = pytest.mark.integration

GW = "gw-sirens"
FINAL = {"succeeded", "failed", "cancelled", "rejected", "expired"}
SHORT = SignalSpec(
    name="air_raid", segments=[SignalSegment(on_s=0.4, off_s=0.3)], repeat=2, number=2
)
# A regional pattern the controllers do not hold: the gateway times it.
CUSTOM = SignalSpec(
    name="disaster-qd",
    segments=[SignalSegment(on_s=0.5, off_s=0.3), SignalSegment(on_s=0.2, off_s=0.3)],
    repeat=1,
)
LONG = SignalSpec(name="all-clear-test", segments=[SignalSegment(on_s=10.0)])
CONTROLLERS = [f"siren-{i:02d}" for i in range(1, 21)]
RELAYS = ["siren-21", "siren-22"]


@dataclass
class Control:
    """Stands in for the control service: signs, publishes, collects acks (reconnecting)."""

    mqtt: MqttSettings
    private_key: str
    client_id: str = field(default_factory=lambda: f"control-{uuid.uuid4().hex[:6]}")
    acks: list[CommandAck] = field(default_factory=list)
    client: MqttClient | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def listen(self) -> None:
        while True:
            try:
                # A persistent session: acks published while this client is away wait for it.
                async with MqttClient(self.mqtt, self.client_id, persistent=True) as client:
                    await client.subscribe([cmd_ack_topic(GW)], qos=1)
                    self.client = client
                    self.connected.set()
                    async for m in client.messages():
                        self.acks.append(CommandAck.model_validate_json(m.payload))
            except ConnectError:
                pass
            self.connected.clear()
            await asyncio.sleep(0.2)

    def activate(
        self, kind: SirenKind, sirens: list[str], signal: SignalSpec | None, activation: str = ""
    ) -> CommandRequest:
        now = time.time_ns() // 1_000_000
        return sign_command(
            CommandRequest(
                id=f"cmd-{uuid.uuid4().hex[:10]}",
                action="siren.activate",
                siren=SirenOrder(
                    activation=activation or f"act-{uuid.uuid4().hex[:8]}",
                    kind=kind,
                    sirens=sirens,
                    signal=signal,
                ),
                ts=now,
                expires=now + 30_000,
                actor="duty-officer-1",
            ),
            load_private_key(self.private_key),
        )

    def cancel(self, activation: str) -> CommandRequest:
        now = time.time_ns() // 1_000_000
        return sign_command(
            CommandRequest(
                id=f"cancel-{uuid.uuid4().hex[:10]}",
                action="siren.cancel",
                params={"activation": activation},
                ts=now,
                expires=now + 30_000,
                actor="commander-1",
            ),
            load_private_key(self.private_key),
        )

    async def send(self, cmd: CommandRequest) -> None:
        await wait_until(self.connected.is_set, 10, "the control client connected")
        assert self.client is not None
        await self.client.publish(cmd_topic(GW), cmd.to_json())

    def of(self, cmd_id: str) -> list[CommandAck]:
        return [a for a in self.acks if a.id == cmd_id]

    async def final(self, cmd_id: str, timeout: float = 20) -> CommandAck:
        def done() -> CommandAck | None:
            # A replay of an accepted id is rejected; the answer that counts is the run's.
            accepted = any(a.state == "accepted" for a in self.of(cmd_id))
            states = FINAL - {"rejected"} if accepted else FINAL
            return next(
                (a for a in self.of(cmd_id) if a.device is None and a.state in states), None
            )

        await wait_until(lambda: done() is not None, timeout, f"the final ack of {cmd_id}")
        result = done()
        assert result is not None
        return result

    def per_siren(self, cmd_id: str) -> dict[str, CommandAck]:
        """The final per-siren ack of each siren; exactly one each."""
        out: dict[str, CommandAck] = {}
        for a in self.of(cmd_id):
            if a.device is not None and a.outcome is not None and a.outcome != "started":
                assert a.device not in out, f"two final outcomes for {a.device}: {a}"
                out[a.device] = a
        return out

    async def started(self, cmd_id: str, sirens: list[str], timeout: float = 10) -> None:
        def all_started() -> bool:
            seen = {a.device for a in self.of(cmd_id) if a.outcome == "started"}
            return set(sirens) <= seen

        await wait_until(all_started, timeout, f"{sirens} started by {cmd_id}")


def gateway_settings(fleet: Fleet, mqtt: MqttSettings, tmp: Path, public: str) -> GatewaySettings:
    devices: list[dict[str, Any]] = [
        {
            "id": d.site,
            "profile": d.profile.name,
            "unit_id": d.unit_id,
            "interval_s": 1.0,
            "transport": {"type": "tcp", "host": d.host, "port": d.port, "timeout_s": 0.3},
        }
        for d in fleet.devices
    ]
    # A siren post whose link is dead: nothing listens on its port.
    devices.append(
        {
            "id": "siren-dead",
            "profile": "siren",
            "interval_s": 1.0,
            "transport": {
                "type": "tcp",
                "host": "127.0.0.1",
                "port": free_port(),
                "timeout_s": 0.3,
            },
        }
    )
    return GatewaySettings.model_validate(
        {
            "gateway_id": GW,
            "site": "siren-district-01",
            "mqtt": mqtt.model_dump(exclude_none=True),
            "devices": devices,
            "outbox": {"path": str(tmp / "outbox.db")},
            "commands": {"public_key": public, "replay_cache_path": str(tmp / "seen.db")},
            "sirens": {
                "confirm_poll_s": 0.02,
                "supervise_poll_s": 0.05,
                "end_tolerance_s": 0.3,
                "unreachable_after_s": 1.0,
            },
        }
    )


@pytest.fixture
async def setup(
    mosquitto: MosquittoServer, tmp_path: Path
) -> AsyncIterator[tuple[Fleet, Gateway, Control]]:
    private, public = generate_keypair()
    mqtt = mqtt_settings(mosquitto.port)
    spec = FleetSpec(
        shelters=0,
        sirens=20,
        relay_sirens=2,
        sirens_per_server=10,
        tick_s=0.05,
        siren_signals={2: SHORT},
    )
    async with Fleet(spec) as fleet:
        gw = Gateway(gateway_settings(fleet, mqtt, tmp_path, public))
        control = Control(mqtt, private)
        async with running(control.listen(), gw.run()):
            await wait_until(gw.connected.is_set, 10, "gateway connected")
            await wait_until(control.connected.is_set, 10, "control connected")
            yield fleet, gw, control


def expected(start: float, signal: SignalSpec) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    t = start
    for _ in range(signal.repeat):
        for seg in signal.segments:
            out.append((t, t + seg.on_s))
            t += seg.on_s + seg.off_s
    return out


def assert_matches(
    timeline: list[tuple[float, float]], signal: SignalSpec, tolerance_s: float = 0.1
) -> None:
    assert timeline, "the siren never sounded"
    want = expected(timeline[0][0], signal)
    assert len(timeline) == len(want), (timeline, want)
    for (a, b), (wa, wb) in zip(timeline, want, strict=True):
        assert abs(a - wa) <= tolerance_s and abs(b - wb) <= tolerance_s, (timeline, want)


async def test_a_silent_test_over_20_sirens_reports_exactly_the_faulted_two(setup) -> None:  # type: ignore[no-untyped-def]
    fleet, _gw, control = setup
    await fleet.fault("siren-04", "siren_amplifier_fault")
    await fleet.fault("siren-17", "siren_driver_fault")
    cmd = control.activate(SirenKind.SILENT_TEST, CONTROLLERS, None)
    await control.send(cmd)
    final = await control.final(cmd.id)
    per = control.per_siren(cmd.id)
    assert final.state == "failed"
    assert final.detail == "2 of 20 sirens: test_failed (siren-04, siren-17); 18 test_passed"
    failed = {s: a.detail.split(":")[0] for s, a in per.items() if a.outcome == "test_failed"}
    assert failed == {"siren-04": "amplifier", "siren-17": "driver_loop"}
    assert {a.outcome for s, a in per.items() if s not in failed} == {"test_passed"}
    assert [a.state for a in control.of(cmd.id) if a.device is None] == [
        "accepted",
        "running",
        "failed",
    ]
    assert all(not fleet.sirens[s].timeline for s in CONTROLLERS), "a silent test sounded"


@pytest.mark.parametrize(
    ("siren", "signal"),
    [("siren-21", CUSTOM), ("siren-02", SHORT), ("siren-03", CUSTOM)],
    ids=["relay-timed-by-gateway", "controller-built-in", "controller-timed-by-gateway"],
)
async def test_the_sound_follows_the_signal_pattern(setup, siren, signal) -> None:  # type: ignore[no-untyped-def]
    fleet, _gw, control = setup
    cmd = control.activate(SirenKind.DRILL, [siren], signal)
    await control.send(cmd)
    final = await control.final(cmd.id)
    assert final.state == "succeeded", control.of(cmd.id)
    assert control.per_siren(cmd.id)[siren].outcome == "sounded"
    assert_matches(fleet.sirens[siren].timeline, signal)


async def test_a_command_delivered_twice_sounds_once(setup) -> None:  # type: ignore[no-untyped-def]
    fleet, _gw, control = setup
    cmd = control.activate(SirenKind.DRILL, ["siren-05", "siren-22"], SHORT)
    await control.send(cmd)
    await control.send(cmd)  # the same id again
    await control.started(cmd.id, ["siren-05", "siren-22"])
    # Another command id carrying the same activation, while the first still plays.
    again = control.activate(SirenKind.DRILL, ["siren-05", "siren-22"], SHORT, cmd.siren.activation)  # type: ignore[union-attr]
    await control.send(again)
    assert (await control.final(cmd.id)).state == "succeeded"
    second = await control.final(again.id)
    assert second.state == "succeeded"
    assert "rejected" in [a.state for a in control.of(cmd.id)]  # the replayed id
    for ack in control.per_siren(again.id).values():
        assert "not started again" in ack.detail, ack
        assert ack.outcome == "sounded"
    assert not [a for a in control.of(again.id) if a.outcome == "started"]
    assert_matches(fleet.sirens["siren-05"].timeline, SHORT)
    assert len(fleet.sirens["siren-22"].timeline) == 2  # one run of two sounds


async def test_a_signal_runs_to_the_end_while_the_broker_is_down(  # type: ignore[no-untyped-def]
    setup, mosquitto: MosquittoServer
) -> None:
    fleet, gw, control = setup
    signal = SignalSpec(name="air_raid", segments=[SignalSegment(on_s=0.5, off_s=0.5)], repeat=3)
    cmd = control.activate(SirenKind.LIVE, ["siren-06", "siren-21"], signal)
    await control.send(cmd)
    await control.started(cmd.id, ["siren-06", "siren-21"])
    mosquitto.stop()
    try:
        await wait_until(lambda: not gw.connected.is_set(), 10, "the gateway saw the broker go")
        await wait_until(
            lambda: all(
                len(fleet.sirens[s].timeline) == 3 and fleet.sirens[s].timeline[-1][1] < time.time()
                for s in ("siren-06", "siren-21")
            ),
            10,
            "the signal finished on both sirens",
        )
        assert not gw.connected.is_set()  # it finished while the uplink was still down
    finally:
        mosquitto.start()
    final = await control.final(cmd.id, timeout=30)
    assert final.state == "succeeded", control.of(cmd.id)
    assert {s: a.outcome for s, a in control.per_siren(cmd.id).items()} == {
        "siren-06": "sounded",
        "siren-21": "sounded",
    }
    for siren in ("siren-06", "siren-21"):
        # Every segment sounded, in order: the signal ran to the end. Mosquitto is stopped
        # and started on the same two cores meanwhile (a segment once ended 0.39 s late while
        # it did), so the timing is held to 0.5 s here; what this test proves is that every
        # segment sounded. The 100 ms accuracy is test_the_sound_follows_the_signal_pattern's.
        assert_matches(fleet.sirens[siren].timeline, signal, tolerance_s=0.5)


async def test_a_cancel_stops_every_siren_within_a_second(setup) -> None:  # type: ignore[no-untyped-def]
    fleet, _gw, control = setup
    sirens = ["siren-07", "siren-08", "siren-22"]
    cmd = control.activate(SirenKind.DRILL, sirens, LONG)
    await control.send(cmd)
    await control.started(cmd.id, sirens)
    cancel = control.cancel(cmd.siren.activation)  # type: ignore[union-attr]
    sent = time.time()
    await control.send(cancel)
    ack = await control.final(cancel.id)
    assert ack.state == "succeeded" and "stopped on 3 sirens" in ack.detail
    assert (await control.final(cmd.id)).state == "cancelled"
    for siren in sirens:
        assert control.per_siren(cmd.id)[siren].outcome == "cancelled"
        ((_start, end),) = fleet.sirens[siren].timeline
        assert end - sent < 1.0, (siren, end - sent)
    # A cancel for an activation this gateway never saw, then that activation arrives late.
    late = control.activate(SirenKind.DRILL, ["siren-09"], SHORT)
    first = control.cancel(late.siren.activation)  # type: ignore[union-attr]
    await control.send(first)
    assert "nothing to cancel" in (await control.final(first.id)).detail
    await control.send(late)
    assert (await control.final(late.id)).state == "cancelled"
    assert not fleet.sirens["siren-09"].timeline


async def test_an_unreachable_siren_is_reported_and_the_others_still_sound(setup) -> None:  # type: ignore[no-untyped-def]
    fleet, _gw, control = setup
    cmd = control.activate(SirenKind.DRILL, ["siren-dead", "siren-10", "pump"], SHORT)
    await control.send(cmd)
    final = await control.final(cmd.id)
    per = control.per_siren(cmd.id)
    assert per["siren-dead"].outcome == "unreachable"
    assert per["siren-10"].outcome == "sounded"
    assert per["pump"].outcome == "failed" and "unknown device" in per["pump"].detail
    assert final.state == "failed"
    assert fleet.sirens["siren-10"].timeline


async def test_a_live_alert_preempts_a_drill_and_a_test_cannot_preempt_it(setup) -> None:  # type: ignore[no-untyped-def]
    fleet, _gw, control = setup
    drill = control.activate(SirenKind.DRILL, ["siren-11", "siren-21"], LONG)
    await control.send(drill)
    await control.started(drill.id, ["siren-11", "siren-21"])
    live = control.activate(SirenKind.LIVE, ["siren-11", "siren-21"], LONG)
    await control.send(live)
    await control.started(live.id, ["siren-11", "siren-21"])
    assert (await control.final(drill.id)).state == "cancelled"
    for ack in control.per_siren(drill.id).values():
        assert ack.outcome == "cancelled"
        assert f"preempted by activation {live.siren.activation}" in ack.detail  # type: ignore[union-attr]
    test = control.activate(SirenKind.AUDIBLE_TEST, ["siren-11"], SHORT)
    await control.send(test)
    refused = await control.final(test.id)
    assert refused.state == "failed"
    assert "refused" in control.per_siren(test.id)["siren-11"].detail
    stop = control.cancel(live.siren.activation)  # type: ignore[union-attr]
    await control.send(stop)
    assert (await control.final(stop.id)).state == "succeeded"
    # The live alert took over where the drill stopped: two sounds, no overlap, all ended.
    for siren in ("siren-11", "siren-21"):
        timeline = fleet.sirens[siren].timeline
        assert len(timeline) == 2
        assert timeline[0][1] <= timeline[1][0]
