"""Vendor quirks against a real pymodbus device whose registers the test sets word by word.

The device is firmware_sim's SimDevice serving a plain block of holding registers; the test
writes the words a vendor's device would send (encoded with shelterwatch.codec from known
values) and polls them with a DevicePoller through a ModbusHub, as the gateway does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.device import SimDevice
from gateway.hub import hubs_for
from gateway.poller import DeviceEvent, DevicePoller
from gateway.settings import DeviceConfig
from shelterwatch import codec
from shelterwatch.contract import Quality, Value
from shelterwatch.profiles import Profile, RegisterKind, load_profile

pytestmark = pytest.mark.integration

RAW_PROFILE = """\
name: raw
kind: raw
points:
  - {name: last, register: holding, address: 63, type: uint16}
"""

# What the vendor's device says, as the gateway's profile describes it.
QUIRKY_PROFILE = """\
name: quirky
kind: meter
points:
  - {name: f_abcd, register: holding, address: 0, type: float32, order: ABCD}
  - {name: f_cdab, register: holding, address: 2, type: float32, order: CDAB}
  - {name: f_badc, register: holding, address: 4, type: float32, order: BADC}
  - {name: f_dcba, register: holding, address: 6, type: float32, order: DCBA}
  # 4-20 mA in µA, 0..1 MPa
  - {name: pressure, register: holding, address: 8, type: uint16, scale: 0.0000625,
     offset: -0.25, unit: MPa, valid_range: [0, 1]}
  # 4-20 mA in 0.01 mA, -20..80 °C
  - {name: temp_loop, register: holding, address: 9, type: uint16, scale: 0.0625,
     offset: -45, unit: "°C", valid_range: [-20, 80]}
  - {name: temp, register: holding, address: 10, type: int16, scale: 0.1,
     sentinel: [0x7FFF, -32768]}
  - {name: level, register: holding, address: 11, type: uint16, sentinel: [0xFFFF]}
  - {name: flow, register: holding, address: 12, type: float32, order: CDAB,
     sentinel: [-9999]}
  - {name: f_nan, register: holding, address: 14, type: float32}
"""


class StaticPhysics:
    """No physics: the test writes the registers itself."""

    def values(self, kind: str) -> dict[str, Value]:
        return {}

    def apply_writes(self, kind: str, writes: Mapping[str, Value]) -> None:
        raise ValueError("read-only")

    def step(self, dt_s: float) -> None:
        pass


class Events:
    def __init__(self) -> None:
        self.events: list[DeviceEvent] = []

    async def __call__(self, event: DeviceEvent) -> None:
        self.events.append(event)


def write_yaml(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
async def device(tmp_path: Path) -> AsyncIterator[SimDevice]:
    profile = load_profile(write_yaml(tmp_path, "raw", RAW_PROFILE))
    sim = SimDevice("lab", "raw", profile, StaticPhysics())
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def put(sim: SimDevice, profile: Profile, values: Mapping[str, Value], base: int = 0) -> None:
    """Encode values with the gateway's profile and set the words on the device."""
    table = sim.image.tables[RegisterKind.HOLDING]
    for name, value in values.items():
        p = profile.point(name)
        table[p.address - base : p.address - base + p.words] = codec.encode(p, value)


def put_words(sim: SimDevice, address: int, words: list[int]) -> None:
    sim.image.tables[RegisterKind.HOLDING][address : address + len(words)] = words


async def poll(
    sim: SimDevice, profile_path: str, **device: Any
) -> tuple[DeviceEvent, DevicePoller]:
    config = DeviceConfig.model_validate(
        {
            "id": "meter",
            "profile": profile_path,
            "transport": {"type": "tcp", "host": sim.host, "port": sim.port},
        }
        | device
    )
    emit = Events()
    hub = hubs_for([config])["meter"]
    poller = DevicePoller(config, load_profile(profile_path), hub, emit, snapshot_interval_s=60)
    try:
        await poller.poll_once()
    finally:
        await hub.close()
    assert poller.online is True, emit.events
    return emit.events[-1], poller


async def test_float32_word_orders_and_4_20_ma(device: SimDevice, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "quirky", QUIRKY_PROFILE)
    profile = load_profile(path)
    known = {
        "f_abcd": 1234.5,
        "f_cdab": -0.15625,
        "f_badc": 3.140625,
        "f_dcba": 6.0e-3,
        "temp": 21.5,
        "level": 812,
        "flow": 17.25,
    }
    put(device, profile, known)
    put_words(device, 8, [12000])  # 12 mA: half scale, 0.5 MPa
    put_words(device, 9, [1000])  # 10 mA on a -20..80 °C loop: 17.5 °C
    put(device, profile, {"f_nan": 0.0})
    event, poller = await poll(device, path)
    assert poller.requests_per_poll == 1  # one block read for all of them
    assert event.quality == {}
    for name, value in known.items():
        assert event.values[name] == pytest.approx(value, rel=1e-7), name
    # Every order decodes the exact float32 it was given.
    assert event.values["f_dcba"] == codec.decode(
        profile.point("f_abcd"), codec.encode(profile.point("f_abcd"), 6.0e-3)
    )
    assert event.values["pressure"] == pytest.approx(0.5)
    assert event.values["temp_loop"] == pytest.approx(17.5)


@pytest.mark.parametrize(
    ("micro_amps", "good"),
    [(3000, False), (3999, False), (4000, True), (20000, True), (20001, False), (0, False)],
)
async def test_4_20_ma_outside_its_range_is_bad(
    device: SimDevice, tmp_path: Path, micro_amps: int, good: bool
) -> None:
    path = write_yaml(tmp_path, "quirky", QUIRKY_PROFILE)
    put(device, load_profile(path), {"f_abcd": 1.0, "level": 5, "temp": 1.0, "flow": 1.0})
    put_words(device, 8, [micro_amps])
    put_words(device, 9, [1000])
    event, _ = await poll(device, path)
    if good:
        assert "pressure" in event.values and "pressure" not in event.quality
    else:
        assert event.quality["pressure"] is Quality.BAD and "pressure" not in event.values
    # The rest of the block is unaffected.
    assert event.values["f_abcd"] == 1.0 and event.values["level"] == 5
    assert event.values["temp_loop"] == pytest.approx(17.5)


async def test_sentinels_and_nan_are_bad_and_only_those_points(
    device: SimDevice, tmp_path: Path
) -> None:
    path = write_yaml(tmp_path, "quirky", QUIRKY_PROFILE)
    profile = load_profile(path)
    put(device, profile, {"f_abcd": 2.5, "f_cdab": 2.5, "f_badc": 2.5, "f_dcba": 2.5})
    put_words(device, 8, [4000, 1000])
    put_words(device, 10, [0x7FFF, 0xFFFF])  # temp and level: "no reading"
    put(device, profile, {"flow": -9999.0})
    put_words(device, 14, [0x7FC0, 0x0000])  # NaN
    event, _ = await poll(device, path)
    bad = {"temp", "level", "flow", "f_nan"}
    assert set(event.quality) == bad
    assert all(q is Quality.BAD for q in event.quality.values())
    assert not bad & set(event.values)
    assert event.values["f_abcd"] == event.values["f_dcba"] == 2.5
    # The other int16 sentinel, then a real reading.
    put_words(device, 10, [0x8000, 0xFFFE])
    event, _ = await poll(device, path)
    assert "temp" in event.quality and event.values["level"] == 0xFFFE
    put_words(device, 10, [0xFFFF])  # -1 is a reading for this int16
    event, _ = await poll(device, path)
    assert event.values["temp"] == pytest.approx(-0.1)


async def test_address_base_1_reads_the_right_registers(device: SimDevice, tmp_path: Path) -> None:
    # The vendor's manual numbers registers from 1: its "register 5" is wire address 4.
    path = write_yaml(
        tmp_path,
        "one_based",
        """\
name: one_based
kind: meter
points:
  - {name: first, register: holding, address: 1, type: uint16}
  - {name: energy, register: holding, address: 5, type: float32, order: CDAB}
""",
    )
    profile = load_profile(path)
    put(device, profile, {"first": 111, "energy": 98.5}, base=1)
    put_words(device, 1, [222])  # what a 0-based read of "first" would see
    event, _ = await poll(device, path, address_base=1)
    assert event.values == {"first": 111, "energy": 98.5}
    # Without the quirk the same profile reads the wrong registers.
    event, _ = await poll(device, path)
    assert event.values["first"] == 222


async def test_inter_request_pause_is_honoured(device: SimDevice, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "quirky", QUIRKY_PROFILE)
    put(device, load_profile(path), {"level": 1})
    pause = 0.15
    # max_registers 4 splits the profile into several requests per poll.
    started = time.perf_counter()
    _, fast = await poll(device, path, max_registers=4)
    fast_s = time.perf_counter() - started
    requests = fast.requests_per_poll
    assert requests >= 4
    started = time.perf_counter()
    _, slow = await poll(
        device,
        path,
        max_registers=4,
        transport={
            "type": "tcp",
            "host": device.host,
            "port": device.port,
            "inter_request_pause_s": pause,
        },
    )
    slow_s = time.perf_counter() - started
    assert slow.requests_per_poll == requests
    assert slow_s >= (requests - 1) * pause
    assert fast_s < (requests - 1) * pause / 2
    # ... and the pause after connecting, before the first request.
    started = time.perf_counter()
    await poll(
        device,
        path,
        transport={
            "type": "tcp",
            "host": device.host,
            "port": device.port,
            "pause_after_connect_s": 0.4,
        },
    )
    assert time.perf_counter() - started >= 0.4


async def test_inter_request_pause_spans_the_devices_of_one_link(
    device: SimDevice, tmp_path: Path
) -> None:
    """The pause is bus etiquette: it holds between requests of different units too."""
    path = write_yaml(tmp_path, "quirky", QUIRKY_PROFILE)
    put(device, load_profile(path), {"level": 1})
    link = {"type": "tcp", "host": device.host, "port": device.port, "inter_request_pause_s": 0.1}
    configs = [
        DeviceConfig.model_validate(
            {"id": f"m{i}", "profile": path, "transport": link, "max_registers": 8}
        )
        for i in range(3)
    ]
    hubs = hubs_for(configs)
    emit = Events()
    pollers = [
        DevicePoller(c, load_profile(path), hubs[c.id], emit, snapshot_interval_s=60)
        for c in configs
    ]
    try:
        await pollers[0].poll_once()  # connect first
        started = time.perf_counter()
        await asyncio.gather(*(p.poll_once() for p in pollers))
        elapsed = time.perf_counter() - started
    finally:
        await hubs["m0"].close()
    total = sum(p.requests_per_poll for p in pollers)
    assert all(p.online for p in pollers)
    # Requests never overlap on the link, and each starts a pause after the last one ended.
    assert elapsed >= (total - 1) * 0.1
