"""Commands through a real broker to real simulated devices: signed, checked, read back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from platform_helpers import gateways_for, mqtt_settings, running
from servers import MosquittoServer, wait_until

from firmware_sim import Fleet, FleetSpec
from gateway import Gateway
from shelterwatch.config import MqttSettings
from shelterwatch.contract import CommandAck, CommandRequest, cmd_ack_topic, cmd_topic
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.signing import generate_keypair, load_private_key, sign_command

GW = "gw-shelter-01"


@dataclass
class Control:
    """Stands in for the control service: signs, publishes, collects acks."""

    client: MqttClient
    private_key: str
    acks: dict[str, list[CommandAck]] = field(default_factory=dict)

    def command(
        self,
        device: str,
        params: dict[str, object],
        *,
        action: str = "write",
        ttl_s: float = 30,
        ts_offset_s: float = 0,
    ) -> CommandRequest:
        now = time.time_ns() // 1_000_000 + int(ts_offset_s * 1000)
        return CommandRequest(
            id=f"cmd-{uuid.uuid4().hex[:10]}",
            device=device,
            action=action,
            params=params,  # type: ignore[arg-type]
            ts=now,
            expires=now + int(ttl_s * 1000),
            actor="duty-officer-1",
        )

    def signed(self, cmd: CommandRequest, key: str | None = None) -> CommandRequest:
        return sign_command(cmd, load_private_key(key or self.private_key))

    async def send(self, cmd: CommandRequest | bytes) -> None:
        payload = cmd if isinstance(cmd, bytes) else cmd.to_json()
        await self.client.publish(cmd_topic(GW), payload)

    async def listen(self) -> None:
        await self.client.subscribe([cmd_ack_topic(GW)])
        async for m in self.client.messages():
            ack = CommandAck.model_validate_json(m.payload)
            self.acks.setdefault(ack.id, []).append(ack)

    async def outcome(self, cmd_id: str, timeout: float = 20) -> CommandAck:
        final = {"rejected", "succeeded", "failed", "expired"}
        await wait_until(
            lambda: any(a.state in final for a in self.acks.get(cmd_id, [])),
            timeout,
            f"an outcome for {cmd_id}",
        )
        return next(a for a in self.acks[cmd_id] if a.state in final)


@pytest.fixture
async def setup(
    mosquitto: MosquittoServer, tmp_path: Path
) -> AsyncIterator[tuple[Fleet, Gateway, Control, MqttSettings]]:
    private, public = generate_keypair()
    mqtt = mqtt_settings(mosquitto.port)
    async with Fleet(FleetSpec(shelters=1, sirens=0, tick_s=0.1)) as fleet:
        (gw,) = gateways_for(
            fleet,
            mqtt,
            interval_s=0.2,
            outbox_dir=tmp_path,
            commands={"public_key": public, "replay_cache_path": str(tmp_path / "seen.db")},
        )
        async with MqttClient(mqtt, f"control-{uuid.uuid4().hex[:6]}") as client:
            control = Control(client, private)
            async with running(control.listen(), gw.run()):
                await wait_until(gw.connected.is_set, 10, "gateway connected")
                yield fleet, gw, control, mqtt


async def test_a_signed_write_is_executed_and_read_back(setup) -> None:  # type: ignore[no-untyped-def]
    fleet, _gw, control, _ = setup
    cmd = control.signed(control.command("vent", {"point": "mode", "value": "filtered"}))
    await control.send(cmd)
    ack = await control.outcome(cmd.id)
    assert ack.state == "succeeded", ack
    assert [a.state for a in control.acks[cmd.id]] == ["accepted", "running", "succeeded"]
    assert fleet.value("shelter-01", "vent", "mode") == "filtered"


async def test_success_waits_until_the_device_shows_the_new_state(setup) -> None:  # type: ignore[no-untyped-def]
    fleet, _gw, control, _ = setup
    assert fleet.value("shelter-01", "door", "position") == "open"
    cmd = control.signed(
        control.command(
            "door",
            {
                "point": "command",
                "value": "close",
                "verify_point": "position",
                "verify_value": "closed",
                "verify_timeout_s": 15,
            },
        )
    )
    started = time.monotonic()
    await control.send(cmd)
    ack = await control.outcome(cmd.id, timeout=25)
    assert ack.state == "succeeded", ack
    assert time.monotonic() - started > 1.0  # the door took its time to close
    assert fleet.value("shelter-01", "door", "position") in ("closed", "locked")


async def test_a_write_the_device_does_not_show_fails_with_what_it_read(setup) -> None:  # type: ignore[no-untyped-def]
    _fleet, _gw, control, _ = setup
    # The simulated door ignores "lock" while it is open: the read-back says so.
    cmd = control.signed(
        control.command("door", {"point": "command", "value": "lock", "verify_timeout_s": 1})
    )
    await control.send(cmd)
    ack = await control.outcome(cmd.id)
    assert ack.state == "failed"
    assert "reads 'idle', expected 'lock'" in ack.detail


@pytest.mark.parametrize(
    ("make", "state", "detail"),
    [
        (
            lambda c: c.command("vent", {"point": "mode", "value": "filtered"}),
            "rejected",
            "unsigned",
        ),
        (
            lambda c: c.signed(
                c.command("vent", {"point": "mode", "value": "filtered"}), key=generate_keypair()[0]
            ),
            "rejected",
            "bad signature",
        ),
        (
            lambda c: c.signed(c.command("vent", {"point": "mode", "value": "filtered"}, ttl_s=-1)),
            "expired",
            "expired",
        ),
        (
            lambda c: c.signed(
                c.command("vent", {"point": "mode", "value": "filtered"}, ts_offset_s=600)
            ),
            "rejected",
            "in the future",
        ),
        (
            lambda c: c.signed(c.command("vent", {"point": "overpressure", "value": 40})),
            "rejected",
            "not writable",
        ),
        (
            lambda c: c.signed(c.command("vent", {"point": "mode", "value": "turbo"})),
            "rejected",
            "no state 'turbo'",
        ),
        (
            lambda c: c.signed(c.command("pump", {"point": "mode", "value": "clean"})),
            "rejected",
            "unknown device",
        ),
        (lambda c: c.signed(c.command("vent", {}, action="reboot")), "rejected", "unknown action"),
    ],
)
async def test_refused_commands_reach_no_device(setup, make, state, detail) -> None:  # type: ignore[no-untyped-def]
    fleet, gw, control, _ = setup
    before = fleet.value("shelter-01", "vent", "mode")
    cmd = make(control)
    # A tampered copy: signed, then the value changed in transit.
    await control.send(cmd)
    ack = await control.outcome(cmd.id)
    assert (ack.state, detail in ack.detail) == (state, True), ack
    assert [a.state for a in control.acks[cmd.id]] == [state]
    assert fleet.value("shelter-01", "vent", "mode") == before
    assert gw.commands.refused >= 1


async def test_tampered_and_malformed_commands_are_rejected(setup) -> None:  # type: ignore[no-untyped-def]
    fleet, _gw, control, _ = setup
    cmd = control.signed(control.command("vent", {"point": "mode", "value": "clean"}))
    tampered = cmd.model_copy(update={"params": {"point": "mode", "value": "isolated"}})
    await control.send(tampered)
    assert (await control.outcome(cmd.id)).detail == "bad signature"
    await control.send(b'{"id": "cmd-broken", "device": "vent"}')
    ack = await control.outcome("cmd-broken")
    assert ack.state == "rejected" and "malformed" in ack.detail
    assert fleet.value("shelter-01", "vent", "mode") != "isolated"


async def test_a_replay_is_refused_even_after_a_gateway_restart(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    private, public = generate_keypair()
    mqtt = mqtt_settings(mosquitto.port)
    settings = {"public_key": public, "replay_cache_path": str(tmp_path / "seen.db")}
    async with (
        Fleet(FleetSpec(shelters=1, sirens=0)) as fleet,
        MqttClient(mqtt, f"control-{uuid.uuid4().hex[:6]}") as client,
    ):
        control = Control(client, private)
        cmd = control.signed(control.command("water", {"point": "pump_running", "value": True}))
        async with running(control.listen()):
            (gw,) = gateways_for(fleet, mqtt, outbox_dir=tmp_path, commands=settings)
            async with running(gw.run()):
                await wait_until(gw.connected.is_set, 10, "gateway connected")
                await control.send(cmd)
                assert (await control.outcome(cmd.id)).state == "succeeded"
                control.acks.clear()
                await control.send(cmd)
                assert "replayed" in (await control.outcome(cmd.id)).detail
            # A new gateway process on the same replay cache.
            control.acks.clear()
            (gw2,) = gateways_for(fleet, mqtt, outbox_dir=tmp_path, commands=settings)
            async with running(gw2.run()):
                await wait_until(gw2.connected.is_set, 10, "gateway connected again")
                await control.send(cmd)
                ack = await control.outcome(cmd.id)
    assert ack.state == "rejected" and "replayed" in ack.detail


async def test_without_a_key_every_command_is_refused(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    private, _public = generate_keypair()
    mqtt = mqtt_settings(mosquitto.port)
    async with (
        Fleet(FleetSpec(shelters=1, sirens=0)) as fleet,
        MqttClient(mqtt, f"control-{uuid.uuid4().hex[:6]}") as client,
    ):
        control = Control(client, private)
        (gw,) = gateways_for(fleet, mqtt, outbox_dir=tmp_path)
        async with running(control.listen(), gw.run()):
            await wait_until(gw.connected.is_set, 10, "gateway connected")
            cmd = control.signed(control.command("vent", {"point": "mode", "value": "filtered"}))
            await control.send(cmd)
            ack = await control.outcome(cmd.id)
    assert ack.state == "rejected" and "no command key" in ack.detail


async def test_a_write_to_a_silent_device_fails_with_the_reason(setup) -> None:  # type: ignore[no-untyped-def]
    fleet, _gw, control, _ = setup
    await fleet.stop_device("shelter-01", "water")
    cmd = control.signed(control.command("water", {"point": "pump_running", "value": True}))
    await control.send(cmd)
    ack = await control.outcome(cmd.id)
    assert ack.state == "failed" and "did not take the write" in ack.detail
    await asyncio.sleep(0)
