"""The simulated fleet over real Modbus TCP, read and written with the pymodbus client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

# Submodules, not the package: a stale editable install can leave firmware_sim a namespace.
from firmware_sim.device import SimDevice
from firmware_sim.fleet import Fleet, FleetSpec, run_fleet
from shelterwatch import codec
from shelterwatch.contract import Value
from shelterwatch.profiles import Point, RegisterKind

pytestmark = pytest.mark.integration


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def connect(device: SimDevice) -> AsyncIterator[AsyncModbusTcpClient]:
    # reconnect_delay=0: no background reconnect task outliving the test.
    client = AsyncModbusTcpClient(
        device.host, port=device.port, timeout=1, retries=0, reconnect_delay=0
    )
    try:
        assert await client.connect(), f"cannot connect to {device!r}"
        yield client
    finally:
        client.close()


async def read_point(client: AsyncModbusTcpClient, point: Point, unit: int = 1) -> Value:
    if point.table is RegisterKind.INPUT:
        rr = await client.read_input_registers(point.address, count=point.words, device_id=unit)
    elif point.table is RegisterKind.HOLDING:
        rr = await client.read_holding_registers(point.address, count=point.words, device_id=unit)
    elif point.table is RegisterKind.COIL:
        rr = await client.read_coils(point.address, count=1, device_id=unit)
    else:
        rr = await client.read_discrete_inputs(point.address, count=1, device_id=unit)
    assert not rr.isError(), f"{point.name}: {rr}"
    words = rr.registers if not point.table.is_bit else [int(rr.bits[0])]
    return codec.decode(point, words)


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    async with Fleet(FleetSpec(shelters=2, sirens=2, tick_s=0.05, seed=7)) as running:
        yield running


async def test_layout_and_gateway_config(fleet: Fleet) -> None:
    assert len(fleet.devices) == 2 * 5 + 2
    assert len({d.port for d in fleet.devices}) == len(fleet.devices)
    assert all(d.port > 0 and d.unit_id == 1 for d in fleet.devices)
    assert fleet.device("shelter-02", "vent").profile.name == "ventilation"
    with pytest.raises(KeyError):
        fleet.device("shelter-03", "vent")

    configs = fleet.gateway_config("127.0.0.1", 1883, "shelterwatch/v1")
    assert [c["site"] for c in configs] == ["shelter-01", "shelter-02", "siren-01", "siren-02"]
    first = configs[0]
    assert first["gateway_id"] == "gw-shelter-01"
    door = fleet.device("shelter-01", "door")
    assert first["devices"][0] == {
        "id": "door",
        "profile": "blast_door",
        "host": door.host,
        "port": door.port,
        "unit_id": 1,
    }
    assert [d["id"] for d in first["devices"]] == ["door", "vent", "water", "env", "power"]
    assert [d["id"] for d in configs[2]["devices"]] == ["siren"]
    # Sites take the spec's districts in turn; shelters and siren posts are counted apart.
    assert [c["district"] for c in configs] == ["xihu", "shangcheng", "xihu", "shangcheng"]
    assert [fleet.district(c["site"]) for c in configs] == [c["district"] for c in configs]


def test_gateway_config_districts_of_banks_and_none() -> None:
    banked = Fleet(FleetSpec(shelters=0, sirens=5, sirens_per_server=2, districts=("a", "b")))
    configs = banked.gateway_config("127.0.0.1", 1883, "shelterwatch/v1")
    assert [(c["site"], c["district"]) for c in configs] == [
        ("siren-bank-01", "a"),
        ("siren-bank-02", "b"),
        ("siren-bank-03", "a"),
    ]
    # A post in a bank is in its bank's district.
    assert banked.district("siren-03") == "b"
    plain = Fleet(FleetSpec(shelters=1, sirens=0, districts=()))
    (config,) = plain.gateway_config("127.0.0.1", 1883, "shelterwatch/v1")
    assert "district" not in config and plain.district("shelter-01") is None


async def test_registers_decode_to_the_simulated_values(fleet: Fleet) -> None:
    fleet.pause()  # so nothing changes between the read and the comparison
    devices = [d for d in fleet.devices if d.site in ("shelter-01", "siren-02")]
    for device in devices:
        async with connect(device) as client:
            for point in device.profile.points:
                read = await read_point(client, point)
                assert read == fleet.value(device.site, device.device_id, point.name), (
                    f"{device!r} {point.name}"
                )
    assert fleet.value("siren-02", "siren", "firmware") == "SW-SIM-1"


async def test_registers_follow_the_running_physics(fleet: Fleet) -> None:
    device = fleet.device("shelter-01", "vent")
    point = device.profile.point("fan_current")
    async with connect(device) as client:
        first = await read_point(client, point)

        async def changed() -> bool:
            return await read_point(client, point) != first

        await wait_for(changed, 5, "a new fan current reading from the physics task")


async def test_ventilation_mode_write_drives_the_physics(fleet: Fleet) -> None:
    fleet.pause()  # step by hand, so the test does not depend on wall-clock time
    site = "shelter-02"
    door, vent = fleet.device(site, "door"), fleet.device(site, "vent")
    mode = vent.profile.point("mode")
    async with connect(door) as door_client, connect(vent) as vent_client:
        rr = await door_client.write_register(0, 2, device_id=1)  # command: close
        assert not rr.isError()
        assert fleet.value(site, "door", "position") == "moving"
        (raw,) = codec.encode(mode, "filtered")
        rr = await vent_client.write_register(mode.address, raw, device_id=1)
        assert not rr.isError()
        assert fleet.shelters[site].vent.mode == "filtered"
        assert await read_point(vent_client, mode) == "filtered"

        for _ in range(30):
            fleet.step(1.0)
        overpressure = await read_point(vent_client, vent.profile.point("overpressure"))
        assert isinstance(overpressure, float) and 30 <= overpressure <= 50
        assert await read_point(vent_client, vent.profile.point("airflow")) == pytest.approx(
            900, abs=50
        )
        assert fleet.value(site, "door", "position") == "closed"


async def test_invalid_writes_answer_modbus_exceptions(fleet: Fleet) -> None:
    vent = fleet.device("shelter-01", "vent")
    async with connect(vent) as client:
        rr = await client.write_register(0, 7, device_id=1)  # no mode 7
        assert rr.isError() and rr.exception_code == 3  # ILLEGAL_VALUE
        rr = await client.write_register(1, 0, device_id=1)  # outside the holding table
        assert rr.isError() and rr.exception_code == 2  # ILLEGAL_ADDRESS
        assert fleet.value("shelter-01", "vent", "mode") == "clean"


async def test_siren_sounds_on_one_multi_register_write(fleet: Fleet) -> None:
    siren = fleet.device("siren-01", "siren")
    async with connect(siren) as client:
        rr = await client.write_registers(0, [1, 2], device_id=1)  # sound, air_raid
        assert not rr.isError()
        assert await read_point(client, siren.profile.point("state")) == "sounding"
        assert await read_point(client, siren.profile.point("active_signal")) == "air_raid"
        rr = await client.write_register(0, 2, device_id=1)  # stop
        assert not rr.isError()
        assert await read_point(client, siren.profile.point("state")) == "idle"


async def test_pump_coil_write(fleet: Fleet) -> None:
    water = fleet.device("shelter-01", "water")
    async with connect(water) as client:
        rr = await client.write_coil(0, True, device_id=1)
        assert not rr.isError()
        assert await read_point(client, water.profile.point("pump_running")) is True
        assert fleet.shelters["shelter-01"].water.pump_auto is False


async def test_stopped_device_stops_answering_and_comes_back(fleet: Fleet) -> None:
    device = fleet.device("shelter-01", "env")
    point = device.profile.point("co2")
    port = device.port
    async with connect(device) as client:
        await read_point(client, point)
        await fleet.stop_device("shelter-01", "env")
        with pytest.raises(ModbusException):
            await client.read_input_registers(point.address, count=1, device_id=1)

    refused = AsyncModbusTcpClient(device.host, port=port, timeout=1, retries=0, reconnect_delay=0)
    try:
        assert not await refused.connect()
    finally:
        refused.close()

    await fleet.start_device("shelter-01", "env")
    assert device.port == port

    async def answers() -> bool:
        try:
            async with connect(device) as client:
                return await read_point(client, point) == fleet.value("shelter-01", "env", "co2")
        except (AssertionError, ModbusException):
            return False  # not listening yet: keep polling

    await wait_for(answers, 5, "the restarted device to answer")


async def test_run_fleet_logs_each_device_and_stops_on_the_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="firmware_sim.fleet")
    stop = asyncio.Event()
    task = asyncio.create_task(run_fleet(FleetSpec(shelters=1, sirens=1), stop))
    try:

        async def all_listening() -> bool:
            return sum("listening on 127.0.0.1:" in r.getMessage() for r in caplog.records) == 6

        await wait_for(all_listening, 5, "a log line per device")
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
