"""Gateway polling rate against a bare pymodbus loop on the same devices, measured in one run.

    firmware_sim Fleet (pymodbus TCP servers, own process) ◀──Modbus TCP── client side

1. bare loop: per device one plain ``AsyncModbusTcpClient`` issuing the requests the gateway
   plans (``plan_reads``) back to back; one task per device, sequential per device;
2. gateway: the real polling path, ``hubs_for`` + one ``DevicePoller`` per device with a tiny
   interval, emitting into a coroutine that only counts events (no MQTT). This is Modbus
   reading, decoding and report by exception: the gateway's hot path.

A register is one value read: a 16-bit word, or one bit of a coil/discrete read. Each phase
runs ``--seconds`` after a 1 s warm-up that is not counted. The ratio is gateway registers/s
over bare registers/s. Goal: ratio >= 0.8.

By default the fleet runs in the measuring event loop, so both phases share one CPU budget
with the devices and the ratio is the ratio of their costs per request (devices included).
With ``--fleet-process`` the devices get their own process: the servers are then usually the
bottleneck and the ratio tends to 1, but "cpu_us_per_request" is the client side's alone.

Also prints the requests saved by block merging on each built-in profile (one request per
point against ``plan_reads``).

Usage: .venv/bin/python bench/poll.py [--seconds S] [--shelters N] [--sirens N]
The last line printed is JSON with every figure and "ratio".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing as mp
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ModbusPDU

from firmware_sim import SHELTER_DEVICES, Fleet, FleetSpec
from gateway.hub import hubs_for
from gateway.planner import ReadBlock, plan_reads
from gateway.poller import DeviceEvent, DevicePoller
from gateway.settings import DeviceConfig, TcpTransport
from shelterwatch.profiles import RegisterKind, builtin_names, load_profile

WARMUP_S = 1.0
GOAL = 0.8
# As good as 0 (DeviceConfig wants interval_s > 0): the poller sleeps 0 s between polls.
POLL_INTERVAL_S = 1e-6


@dataclass(frozen=True, slots=True)
class Device:
    """What the client side needs to know about one simulated device."""

    id: str
    profile: str
    host: str
    port: int
    unit_id: int


@dataclass(frozen=True, slots=True)
class Rate:
    requests_per_s: float
    registers_per_s: float
    polls_per_s: float
    # CPU time of this process per request (with --fleet-process: the client side alone).
    cpu_us_per_request: float
    failures: int

    @classmethod
    def of(cls, m: Measured, failures: int) -> Rate:
        return cls(
            m.requests / m.elapsed,
            m.registers / m.elapsed,
            m.polls / m.elapsed,
            m.cpu_s * 1e6 / max(m.requests, 1),
            failures,
        )


@dataclass(frozen=True, slots=True)
class Measured:
    elapsed: float
    cpu_s: float
    requests: int
    registers: int
    polls: int


# --- the fleet -------------------------------------------------------------------------------


def _devices_of(fleet: Fleet) -> list[Device]:
    return [
        Device(f"{d.site}-{d.device_id}", d.profile.name, d.host, d.port, d.unit_id)
        for d in fleet.devices
    ]


def _fleet_process(spec_json: str, conn: Connection) -> None:
    """Child process: run the fleet, send its devices, run until the parent says stop."""
    logging.basicConfig(level=logging.WARNING)

    async def main() -> None:
        async with Fleet(FleetSpec.model_validate_json(spec_json)) as fleet:
            conn.send(_devices_of(fleet))
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            loop.add_reader(conn.fileno(), stop.set)
            try:
                await stop.wait()
            finally:
                loop.remove_reader(conn.fileno())

    asyncio.run(main())
    conn.close()


class FleetProcess:
    """The fleet in a spawned child process; ``devices`` once it listens."""

    def __init__(self, spec: FleetSpec) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_fleet_process, args=(spec.model_dump_json(), child), daemon=True
        )
        self._proc.start()
        child.close()
        if not self._conn.poll(30):
            self._proc.kill()
            raise SystemExit("the fleet did not start within 30 s")
        self.devices: list[Device] = self._conn.recv()

    def close(self) -> None:
        self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._conn.close()


# --- block merging ---------------------------------------------------------------------------


def _registers(blocks: list[ReadBlock]) -> int:
    return sum(b.count for b in blocks)


def merging_table() -> dict[str, Any]:
    """Per built-in profile: requests with one per point, and with plan_reads."""
    rows: dict[str, dict[str, int]] = {}
    print(
        f"{'profile':<12} {'points':>6} {'per point':>9} {'merged':>6} {'saved':>5}",
        file=sys.stderr,
    )
    for name in builtin_names():
        points = load_profile(name).points
        merged = len(plan_reads(points))
        rows[name] = {"points": len(points), "per_point": len(points), "merged": merged}
        print(
            f"{name:<12} {len(points):>6} {len(points):>9} {merged:>6} {len(points) - merged:>5}",
            file=sys.stderr,
        )
    per_point = sum(r["per_point"] for r in rows.values())
    merged = sum(r["merged"] for r in rows.values())
    print(
        f"{'total':<12} {per_point:>6} {per_point:>9} {merged:>6} {per_point - merged:>5}",
        file=sys.stderr,
    )
    return {
        "profiles": rows,
        "requests_per_point": per_point,
        "requests_merged": merged,
        "requests_saved": per_point - merged,
        "saved_fraction": round(1 - merged / per_point, 3),
    }


# --- measuring -------------------------------------------------------------------------------


async def _measure(seconds: float, counters: Callable[[], tuple[int, int, int]]) -> Measured:
    """Sleep through the warm-up, then count (requests, registers, polls) for ``seconds``."""
    await asyncio.sleep(WARMUP_S)
    start, cpu, before = time.perf_counter(), time.process_time(), counters()
    await asyncio.sleep(seconds)
    elapsed, cpu_s, after = time.perf_counter() - start, time.process_time() - cpu, counters()
    requests, registers, polls = (a - b for a, b in zip(after, before, strict=True))
    return Measured(elapsed, cpu_s, requests, registers, polls)


_BARE_READS: dict[RegisterKind, str] = {
    RegisterKind.COIL: "read_coils",
    RegisterKind.DISCRETE: "read_discrete_inputs",
    RegisterKind.INPUT: "read_input_registers",
    RegisterKind.HOLDING: "read_holding_registers",
}


async def bare_loop(devices: list[Device], seconds: float) -> Rate:
    """Plain pymodbus clients issuing the gateway's planned requests back to back."""
    counts = {"requests": 0, "registers": 0, "polls": 0}
    failures = 0
    stop = asyncio.Event()

    async def one(device: Device, client: AsyncModbusTcpClient) -> None:
        nonlocal failures
        reads: list[tuple[Callable[..., Awaitable[ModbusPDU]], int, int]] = [
            (getattr(client, _BARE_READS[b.table]), b.address, b.count)
            for b in plan_reads(load_profile(device.profile).points)
        ]
        while not stop.is_set():
            for read, address, count in reads:
                result = await read(address, count=count, device_id=device.unit_id)
                if result.isError():
                    failures += 1
                counts["requests"] += 1
                counts["registers"] += count
            counts["polls"] += 1

    clients = [AsyncModbusTcpClient(d.host, port=d.port, timeout=1.0) for d in devices]
    try:
        for client, device in zip(clients, devices, strict=True):
            if not await client.connect():
                raise SystemExit(f"bare client cannot connect to {device.host}:{device.port}")
        tasks = [asyncio.create_task(one(d, c)) for d, c in zip(devices, clients, strict=True)]
        measured = await _measure(
            seconds, lambda: (counts["requests"], counts["registers"], counts["polls"])
        )
        stop.set()  # each task ends after its current poll: no request is cut off
        await asyncio.gather(*tasks)
    finally:
        for client in clients:
            client.close()
    return Rate.of(measured, failures)


def device_configs(devices: list[Device]) -> list[DeviceConfig]:
    return [
        DeviceConfig(
            id=d.id,
            profile=d.profile,
            transport=TcpTransport(host=d.host, port=d.port),
            unit_id=d.unit_id,
            interval_s=POLL_INTERVAL_S,
        )
        for d in devices
    ]


class BenchPoller(DevicePoller):
    """A DevicePoller that can be stopped between two polls.

    Cancelling ``run()`` mid-request leaves the answer to arrive for nobody (pymodbus logs
    "received pdu without a corresponding request"), and on Python 3.11 the cancellation can
    even be lost: ``asyncio.wait_for`` in pymodbus' ``execute`` returns the result instead of
    raising when the answer and the cancel land in the same loop iteration, and the poller
    polls on. So ``stop()`` makes the poller park after its current poll, where cancelling
    it is clean. The cost is one attribute test per poll.
    """

    stopping = False

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.parked = asyncio.Event()

    async def poll_once(self) -> None:
        await super().poll_once()
        if self.stopping:
            self.parked.set()
            await asyncio.Event().wait()  # until cancelled


async def _stop(pollers: list[BenchPoller], tasks: list[asyncio.Task[None]]) -> None:
    for p in pollers:
        p.stopping = True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            await asyncio.gather(*(p.parked.wait() for p in pollers))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def gateway_loop(devices: list[Device], seconds: float) -> tuple[Rate, int]:
    """The gateway's pollers as fast as they go; emit only counts events."""
    events = 0

    async def emit(_event: DeviceEvent) -> None:
        nonlocal events
        events += 1

    configs = device_configs(devices)
    hubs = hubs_for(configs)
    pollers = [
        BenchPoller(c, load_profile(c.profile), hubs[c.id], emit, snapshot_interval_s=60.0)
        for c in configs
    ]
    per_poll = [(p.requests_per_poll, _registers(plan_reads(p.profile.points))) for p in pollers]

    def counters() -> tuple[int, int, int]:
        requests = registers = polls = 0
        for p, (req, reg) in zip(pollers, per_poll, strict=True):
            done = p.polls - p.failures
            requests += req * done
            registers += reg * done
            polls += done
        return requests, registers, polls

    tasks = [asyncio.create_task(p.run(), name=f"poll {p.config.id}") for p in pollers]
    try:
        measured = await _measure(seconds, counters)
    finally:
        await _stop(pollers, tasks)
        for hub in {id(h): h for h in hubs.values()}.values():
            await hub.close()
    failures = sum(p.failures for p in pollers)
    return Rate.of(measured, failures), events


# --- main ------------------------------------------------------------------------------------


def _show(rate: Rate) -> str:
    return (
        f"  {rate.requests_per_s:,.0f} requests/s, {rate.registers_per_s:,.0f} registers/s, "
        f"{rate.polls_per_s:,.0f} polls/s, {rate.cpu_us_per_request:.0f} µs CPU/request, "
        f"{rate.failures} failures"
    )


async def run_phases(devices: list[Device], seconds: float) -> tuple[Rate, Rate, int]:
    print(f"bare pymodbus loop: {len(devices)} devices, {seconds:g} s ...", file=sys.stderr)
    bare = await bare_loop(devices, seconds)
    print(_show(bare), file=sys.stderr)
    print(f"gateway pollers: {len(devices)} devices, {seconds:g} s ...", file=sys.stderr)
    gw, events = await gateway_loop(devices, seconds)
    print(_show(gw) + f", {events:,} events", file=sys.stderr)
    return bare, gw, events


async def in_process(spec: FleetSpec, seconds: float) -> tuple[Rate, Rate, int]:
    async with Fleet(spec) as fleet:
        return await run_phases(_devices_of(fleet), seconds)


def _run(coro: Coroutine[Any, Any, tuple[Rate, Rate, int]]) -> tuple[Rate, Rate, int]:
    return asyncio.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per phase")
    parser.add_argument("--shelters", type=int, default=4)
    parser.add_argument("--sirens", type=int, default=4)
    parser.add_argument(
        "--fleet-process",
        action="store_true",
        help="run the devices in a child process instead of the measuring event loop",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    spec = FleetSpec(shelters=args.shelters, sirens=args.sirens, base_port=0)

    print("requests per poll, one per point vs block merging:", file=sys.stderr)
    merging = merging_table()

    if args.fleet_process:
        fleet = FleetProcess(spec)
        try:
            bare, gw, events = _run(run_phases(fleet.devices, args.seconds))
        finally:
            fleet.close()
    else:
        bare, gw, events = _run(in_process(spec, args.seconds))

    ratio = gw.registers_per_s / bare.registers_per_s
    print(f"ratio gateway / bare: {ratio:.3f} (goal {GOAL})", file=sys.stderr)
    print(
        json.dumps(
            {
                "bench": "poll",
                "devices": args.shelters * len(SHELTER_DEVICES) + args.sirens,
                "shelters": args.shelters,
                "sirens": args.sirens,
                "seconds": args.seconds,
                "warmup_s": WARMUP_S,
                "fleet": "child process" if args.fleet_process else "in-process",
                "bare_requests_per_s": round(bare.requests_per_s),
                "bare_registers_per_s": round(bare.registers_per_s),
                "bare_polls_per_s": round(bare.polls_per_s),
                "bare_cpu_us_per_request": round(bare.cpu_us_per_request, 1),
                "bare_failures": bare.failures,
                "gateway_requests_per_s": round(gw.requests_per_s),
                "gateway_registers_per_s": round(gw.registers_per_s),
                "gateway_polls_per_s": round(gw.polls_per_s),
                "gateway_cpu_us_per_request": round(gw.cpu_us_per_request, 1),
                "gateway_failures": gw.failures,
                "gateway_events": events,
                "block_merging": merging,
                "ratio": round(ratio, 3),
                "goal": GOAL,
            }
        )
    )


if __name__ == "__main__":
    main()
