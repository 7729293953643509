"""Modbus RTU: a serial bus (a socat pty pair) and RTU frames over TCP, against firmware_sim."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.device import SimDevice
from firmware_sim.fleet import Fleet, FleetSpec
from firmware_sim.physics import ShelterPhysics
from gateway.hub import hubs_for
from gateway.poller import DeviceEvent, DevicePoller
from gateway.settings import DeviceConfig
from shelterwatch.errors import ConnectError, DeviceTimeout
from shelterwatch.profiles import load_profile

pytestmark = pytest.mark.integration


@pytest.fixture
def serial_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two pty ends joined by socat, like two ends of one serial cable."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.fail("socat is not installed (Debian package 'socat')", pytrace=False)
    a, b = tmp_path / "tty-a", tmp_path / "tty-b"
    log_path = tmp_path / "socat.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [socat, "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 10
        while not (a.exists() and b.exists()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"socat did not make the pty pair: {log_path.read_text()}")
            time.sleep(0.02)
        yield str(a), str(b)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Events:
    def __init__(self) -> None:
        self.events: list[DeviceEvent] = []

    async def __call__(self, event: DeviceEvent) -> None:
        self.events.append(event)


def config(id: str, profile: str, transport: dict[str, Any], **kw: Any) -> DeviceConfig:
    return DeviceConfig.model_validate({"id": id, "profile": profile, "transport": transport} | kw)


def pollers_for(
    configs: list[DeviceConfig], emit: Events
) -> tuple[list[DevicePoller], dict[str, Any]]:
    hubs = hubs_for(configs)
    pollers = [
        DevicePoller(c, load_profile(c.profile), hubs[c.id], emit, snapshot_interval_s=60)
        for c in configs
    ]
    return pollers, hubs


async def close_all(hubs: dict[str, Any]) -> None:
    for hub in {id(h): h for h in hubs.values()}.values():
        await hub.close()


async def test_rtu_device_on_a_serial_port_reads_what_the_simulator_holds(
    serial_pair: tuple[str, str],
) -> None:
    sim_end, gw_end = serial_pair
    async with Fleet(FleetSpec(shelters=1, sirens=0)) as fleet:
        fleet.pause()
        # (ptys take any baud rate but refuse parity, so the line settings tested are N.)
        await fleet.serve_rtu(sim_end, {7: ("shelter-01", "water")}, baudrate=19200)
        emit = Events()
        (poller,), hubs = pollers_for(
            [
                config(
                    "water",
                    "water",
                    {"type": "rtu", "port": gw_end, "baudrate": 19200, "stopbits": 2},
                    unit_id=7,
                )
            ],
            emit,
        )
        try:
            await poller.poll_once()
            assert poller.online is True, emit.events
            (event,) = emit.events
            assert event.full and not event.quality
            sim = fleet.device("shelter-01", "water")
            assert event.values == {p.name: sim.value(p.name) for p in sim.profile.points}
            # Writes go through the serial link too.
            hub = hubs["water"]
            await hub.write_coil(0, True, unit_id=7)
            await poller.poll_once()
            assert sim.value("pump_running") is True
            assert emit.events[-1].values.get("pump_running") is True
        finally:
            await close_all(hubs)


async def test_silent_unit_on_a_bus_does_not_stop_the_others(
    serial_pair: tuple[str, str],
) -> None:
    sim_end, gw_end = serial_pair
    bus = {"type": "rtu", "port": gw_end, "timeout_s": 0.3, "retries": 0}
    async with Fleet(FleetSpec(shelters=1, sirens=0)) as fleet:
        fleet.pause()
        await fleet.serve_rtu(sim_end, {1: ("shelter-01", "water")})
        emit = Events()
        (water, ghost), hubs = pollers_for(
            [config("water", "water", bus, unit_id=1), config("ghost", "water", bus, unit_id=9)],
            emit,
        )
        try:
            await water.poll_once()
            await ghost.poll_once()
            await water.poll_once()
            assert water.online is True and water.failures == 0
            assert ghost.online is False and ghost.failures == 1
            # The link stayed open: one connect for the whole bus.
            assert hubs["water"].connects == 1
        finally:
            await close_all(hubs)


async def test_missing_serial_port_logs_the_link_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    device = config("water", "water", {"type": "rtu", "port": str(tmp_path / "no-such-tty")})
    hub = hubs_for([device])["water"]
    hub._backoff = type(hub._backoff)(initial=0.01, maximum=0.02)  # fast retries for the test
    caplog.set_level(logging.DEBUG, logger="gateway.hub")
    try:
        for _ in range(4):
            with pytest.raises(ConnectError):
                await hub.read(load_profile("water").points[0].table, 0, 1, 1)
            await asyncio.sleep(0.03)
        mine = [r for r in caplog.records if r.name == "gateway.hub"]
        assert [r.levelno for r in mine] == [logging.WARNING] + [logging.DEBUG] * 3
        assert "no-such-tty" in mine[0].getMessage()
    finally:
        await hub.close()


async def test_mixed_fleet_keeps_every_device_interval(serial_pair: tuple[str, str]) -> None:
    """Two units on one serial bus plus TCP devices: each polled at its own interval."""
    sim_end, gw_end = serial_pair
    async with Fleet(FleetSpec(shelters=1, sirens=1)) as fleet:
        fleet.pause()
        await fleet.serve_rtu(sim_end, {1: ("shelter-01", "water"), 2: ("shelter-01", "env")})
        bus = {"type": "rtu", "port": gw_end, "inter_request_pause_s": 0.005}

        def tcp(site: str, dev: str) -> dict[str, Any]:
            d = fleet.device(site, dev)
            return {"type": "tcp", "host": d.host, "port": d.port}

        configs = [
            config("water", "water", bus, unit_id=1, interval_s=0.25),
            config("env", "environment", bus, unit_id=2, interval_s=0.4),
            config("door", "blast_door", tcp("shelter-01", "door"), interval_s=0.2),
            config("vent", "ventilation", tcp("shelter-01", "vent"), interval_s=0.5),
            config("power", "power", tcp("shelter-01", "power"), interval_s=0.8),
            config("siren", "siren", tcp("siren-01", "siren"), interval_s=0.3),
        ]
        emit = Events()
        pollers, hubs = pollers_for(configs, emit)
        assert hubs["water"] is hubs["env"]
        duration = 4.0
        try:
            async with asyncio.timeout(duration + 5):
                tasks = [asyncio.create_task(p.run()) for p in pollers]
                await asyncio.sleep(duration)
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await close_all(hubs)
        for poller in pollers:
            interval = poller.config.interval_s
            assert interval is not None
            expected = duration / interval
            assert poller.failures == 0, poller.config.id
            assert poller.online is True
            # Polls start at 0, I, 2I, ... so floor(D/I) + 1 of them; allow one either way.
            assert abs(poller.polls - (expected + 0.5)) <= 1.6, (
                f"{poller.config.id}: {poller.polls} polls in {duration} s at {interval} s"
            )
        # And the serial devices read what the simulator holds.
        first = {e.device: e for e in emit.events if e.full}
        for dev in ("water", "env"):
            sim = fleet.device("shelter-01", dev)
            assert first[dev].values == {p.name: sim.value(p.name) for p in sim.profile.points}


async def test_rtu_over_tcp_reads_a_serial_server() -> None:
    physics = ShelterPhysics(seed=3)
    sim = SimDevice("shelter-09", "water", load_profile("water"), physics, rtu_over_tcp=True)
    await sim.start()
    emit = Events()
    (poller,), hubs = pollers_for(
        [
            config(
                "water",
                "water",
                {"type": "rtu_over_tcp", "host": sim.host, "port": sim.port},
                unit_id=1,
            )
        ],
        emit,
    )
    try:
        await poller.poll_once()
        assert poller.online is True, emit.events
        (event,) = emit.events
        assert event.values == {p.name: sim.value(p.name) for p in sim.profile.points}
    finally:
        await close_all(hubs)
        await sim.stop()


async def test_plain_tcp_framing_does_not_read_an_rtu_over_tcp_server() -> None:
    """The framing matters: MBAP requests to an RTU-over-TCP server get no answer."""
    physics = ShelterPhysics(seed=3)
    sim = SimDevice("shelter-09", "water", load_profile("water"), physics, rtu_over_tcp=True)
    await sim.start()
    hubs = hubs_for(
        [
            config(
                "water",
                "water",
                {"type": "tcp", "host": sim.host, "port": sim.port, "timeout_s": 0.3},
                retries=0,
            )
        ]
    )
    try:
        with pytest.raises((DeviceTimeout, ConnectError)):
            await hubs["water"].read(load_profile("water").points[0].table, 0, 1, 1)
    finally:
        await close_all(hubs)
        await sim.stop()
