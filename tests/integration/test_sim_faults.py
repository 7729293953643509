"""Faults switched on and repaired from another process, seen by a Modbus client.

The fleet and its fault-control endpoint run in the test's event loop; the command line runs
as a subprocess, as a person would type it in another shell, so its blocking HTTP call never
holds the loop the endpoint answers on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from platform_helpers import mqtt_settings
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from servers import MosquittoServer, free_port, wait_until

# Submodules, not the package: a stale editable install can leave firmware_sim a namespace.
from firmware_sim.control import FaultClient, FaultServer
from firmware_sim.fleet import Fleet, FleetSpec
from shelterwatch import codec
from shelterwatch.contract import Value
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.profiles import RegisterKind, load_profile
from shelterwatch.sim_inject import SimInject, sim_inject_topic

pytestmark = pytest.mark.integration

SHELTER, SIREN = "shelter-01", "siren-01"


@pytest.fixture
async def sim() -> AsyncIterator[tuple[Fleet, FaultServer]]:
    async with (
        Fleet(FleetSpec(shelters=1, sirens=1, tick_s=0.05, seed=5)) as fleet,
        FaultServer(fleet, port=0) as server,
    ):
        yield fleet, server


async def cli(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SHELTERWATCH_SIM_CONTROL"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shelterwatch.cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def read(host: str, port: int, profile: str, name: str) -> Value:
    """One point read over Modbus TCP by a fresh client, as a gateway would."""
    point = load_profile(profile).point(name)
    client = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0, reconnect_delay=0)
    try:
        if not await client.connect():
            raise ConnectionError(f"nothing answers on {host}:{port}")
        if point.table is RegisterKind.INPUT:
            rr = await client.read_input_registers(point.address, count=point.words, device_id=1)
        elif point.table is RegisterKind.DISCRETE:
            rr = await client.read_discrete_inputs(point.address, count=1, device_id=1)
        else:
            raise AssertionError(f"{name}: not a sensor reading")
        assert not rr.isError(), f"{name}: {rr}"
        words = [int(rr.bits[0])] if point.table.is_bit else rr.registers
        return codec.decode(point, words)
    finally:
        client.close()


async def read_device(fleet: Fleet, site: str, device_id: str, name: str) -> Value:
    device = fleet.device(site, device_id)
    return await read(device.host, device.port, device.profile.name, name)


async def test_fan_failure_from_the_command_line_shows_over_modbus(
    sim: tuple[Fleet, FaultServer],
) -> None:
    fleet, server = sim
    assert await read_device(fleet, SHELTER, "vent", "fan_fault") is False

    rc, out, err = await cli("sim", "fault", SHELTER, "fan_failure", "--sim", server.url)
    assert rc == 0, err
    assert "fan_failure on at shelter-01" in out
    assert [(f.site, f.scenario) for f in fleet.faults] == [(SHELTER, "fan_failure")]

    async def failed() -> bool:
        return (
            await read_device(fleet, SHELTER, "vent", "fan_fault") is True
            and await read_device(fleet, SHELTER, "vent", "fan_current") == 0.0
            and await read_device(fleet, SHELTER, "vent", "airflow") == 0.0
        )

    await wait_until(failed, 5, "fan_fault set and the fan stopped, over Modbus")

    rc, out, err = await cli(
        "sim", "fault", SHELTER, "fan_failure", "--repair", "--sim", server.url
    )
    assert rc == 0, err
    assert "repaired fan_failure at shelter-01" in out
    assert fleet.faults == []

    async def running() -> bool:
        current = await read_device(fleet, SHELTER, "vent", "fan_current")
        return await read_device(fleet, SHELTER, "vent", "fan_fault") is False and current != 0.0

    await wait_until(running, 5, "the fan running again, over Modbus")


async def test_seal_leak_with_a_rate_option(sim: tuple[Fleet, FaultServer]) -> None:
    fleet, server = sim
    shelter = fleet.shelters[SHELTER]
    shelter.apply_write("door", "command", "close")
    shelter.apply_write("ventilation", "mode", "filtered")

    async def sealed() -> bool:
        pressure = await read_device(fleet, SHELTER, "door", "seal_pressure")
        return isinstance(pressure, float) and pressure > 45

    await wait_until(sealed, 10, "the closed door's seal inflated")

    rc, out, err = await cli(
        "sim", "fault", SHELTER, "seal_leak", "rate_kpa_s=10", "--sim", server.url
    )
    assert rc == 0, err
    assert "seal_leak on at shelter-01 (rate_kpa_s=10.0)" in out

    async def leaking() -> bool:
        pressure = await read_device(fleet, SHELTER, "door", "seal_pressure")
        return isinstance(pressure, float) and pressure < 5

    await wait_until(leaking, 10, "the seal deflated, over Modbus")
    assert await read_device(fleet, SHELTER, "door", "position") == "closed"


async def test_comm_loss_silences_a_device_until_repaired(sim: tuple[Fleet, FaultServer]) -> None:
    fleet, server = sim
    env = fleet.device(SHELTER, "env")
    await read_device(fleet, SHELTER, "env", "co2")

    rc, _, err = await cli("sim", "fault", SHELTER, "comm_loss", "device=env", "--sim", server.url)
    assert rc == 0, err
    with pytest.raises((ConnectionError, ModbusException)):
        await read(env.host, env.port, "environment", "co2")
    # Only the named device: the others of the site still answer.
    assert await read_device(fleet, SHELTER, "water", "low_level") in (True, False)

    rc, _, err = await cli("sim", "fault", SHELTER, "comm_loss", "--repair", "--sim", server.url)
    assert rc == 0, err

    async def answers() -> bool:
        with contextlib.suppress(ConnectionError, ModbusException):
            return await read(env.host, env.port, "environment", "co2") is not None
        return False

    await wait_until(answers, 5, "the env device answering again on its port")


async def test_refusals_and_an_unreachable_simulator_are_clear_errors(
    sim: tuple[Fleet, FaultServer],
) -> None:
    _, server = sim
    rc, _, err = await cli("sim", "fault", SHELTER, "flood", "--sim", server.url)
    assert rc == 1
    assert "no fault scenario 'flood'" in err
    rc, _, err = await cli(
        "sim", "fault", SIREN, "siren_battery_decay", "--repair", "--sim", server.url
    )
    assert rc == 1
    assert "not active" in err

    rc, _, err = await cli(
        "sim", "fault", SHELTER, "seal_leak", "--sim", f"127.0.0.1:{free_port()}"
    )
    assert rc == 1
    assert "the simulator is not reachable" in err

    # The endpoint itself answers anything else with JSON errors, never by hanging up.
    status = await asyncio.to_thread(FaultClient(server.url).status)
    assert status["faults"] == [] and "seal_leak" in status["scenarios"]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /faults HTTP/1.1\r\nContent-Length: 5\r\n\r\n[1,2]")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 400 ") and b"JSON object" in answer


async def test_sim_command_still_runs_from_its_settings_and_takes_faults(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    control_port = free_port()
    mqtt = mqtt_settings(mosquitto.port, prefix=f"t{uuid.uuid4().hex[:6]}/v1")
    gateways = tmp_path / "gateways"
    settings = tmp_path / "sim.yaml"
    settings.write_text(
        yaml.safe_dump(
            {
                "shelters": 1,
                "sirens": 1,
                "base_port": 0,
                "tick_s": 0.1,
                "control_port": control_port,
                "gateway_config_dir": str(gateways),
                "mqtt": {"host": mqtt.host, "port": mqtt.port, "prefix": mqtt.prefix},
            }
        ),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHELTERWATCH_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shelterwatch.cli.main",
        "sim",
        "--config",
        str(settings),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    url = f"http://127.0.0.1:{control_port}"
    try:
        siren_file = gateways / "gw-siren-01.yaml"
        await wait_until(siren_file.exists, 30, "the simulator's gateway files")
        (device,) = yaml.safe_load(siren_file.read_text(encoding="utf-8"))["devices"]
        host, port = device["transport"]["host"], device["transport"]["port"]
        assert await read(host, port, "siren", "amplifier_fault") is False

        rc, out, err = await cli("sim", "fault", SIREN, "siren_amplifier_fault", "--sim", url)
        assert rc == 0, err

        async def faulted() -> bool:
            return await read(host, port, "siren", "state") == "fault"

        await wait_until(faulted, 5, "the siren in fault state, over Modbus")
        assert await read(host, port, "siren", "amplifier_fault") is True

        rc, out, err = await cli("sim", "faults", "--sim", url)
        assert rc == 0, err
        assert "siren-01" in out and "siren_amplifier_fault" in out

        # An exercise inject from the control service reaches the fleet over the broker. QoS 1
        # without retain: published again until the listener, subscribing at its own pace,
        # has it; the simulator applies each (id, action) once.
        inject = SimInject(
            id="drill-1.power",
            exercise="drill-1",
            action="inject",
            site=SIREN,
            scenario="power_loss",
            ts=int(time.time() * 1000),
        )
        async with MqttClient(mqtt, f"director-{uuid.uuid4().hex[:8]}") as director:

            async def on_battery() -> bool:
                await director.publish(sim_inject_topic(mqtt.prefix), inject.to_json(), qos=1)
                return await read(host, port, "siren", "ac_power") is False

            await wait_until(on_battery, 15, "the injected power loss, over Modbus", interval=0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, log = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, log.decode()
    assert f"fault control on {url}" in log.decode()
    assert "fault siren_amplifier_fault switched on at siren-01" in log.decode()
    assert "inject drill-1.power power_loss at siren-01 (siren-01)" in log.decode()
