"""A synthetic fleet: thousands of shelters speaking the MQTT contract, without Modbus.

The Modbus fleet (``fleet.py``) runs one pymodbus server per device and needs a gateway per
shelter to poll it, which tops out at a few hundred shelters on one machine. To load the
platform at province scale, this publisher speaks the contract directly, as the gateways would:

- per shelter one gateway ``gw-<site>`` with the five shelter devices of ``SHELTER_DEVICES``;
- its birth (retained online ``GatewayState``), then each device's retained ``DeviceState``
  with the profile's points and units, then data;
- data by exception: each visit of a device moves one or two points past their deadband and
  publishes only those, with a full snapshot on the first visit and every ``snapshot_s``;
- ``seq`` per gateway across its devices, ``site`` and ``kind`` in every data message;
- on a clean stop, every gateway's offline state (retained).

Every payload is built through the contract models, so it is validated as a gateway's would be.
Numbers keep the types the gateway's codec gives them (an unscaled integer register stays an
integer), so synthetic and real data of one kind never conflict in InfluxDB.

What differs from real gateways: many gateways share each MQTT connection (``connections``),
so a gateway has no will of its own; a killed publisher leaves its gateways "online". Devices
are visited round robin at ``rate`` data messages per second in total.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from firmware_sim.fleet import SHELTER_DEVICES
from shelterwatch.config import MqttSettings
from shelterwatch.contract import (
    DeviceData,
    DeviceState,
    GatewayState,
    PointInfo,
    Value,
    data_topic,
    device_state_topic,
    gateway_state_topic,
)
from shelterwatch.errors import ConnectError
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.profiles import DataType, Profile, load_profile

__all__ = ["Publication", "SyntheticFleet", "SyntheticSpec", "SyntheticStats", "run_synthetic"]

log = logging.getLogger(__name__)

_VERSION = "synthetic"


class SyntheticSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    shelters: Annotated[int, Field(ge=1, le=100_000)] = 100
    # Data messages per second over the whole fleet.
    rate: Annotated[float, Field(gt=0, le=100_000)] = 1000.0
    snapshot_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    # MQTT connections the gateways are spread over (a gateway stays on one, so its seqs
    # arrive in order).
    connections: Annotated[int, Field(ge=1, le=64)] = 4
    # Sites are <site_prefix>-00001, ...; gateways gw-<site>.
    site_prefix: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")] = "syn"
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Publication:
    topic: str
    payload: bytes
    retain: bool
    connection: int  # which of the spec's connections carries it


@dataclass(slots=True)
class SyntheticStats:
    births: int = 0  # retained gateway and device states published
    messages: int = 0  # data messages
    values: int = 0  # points in those messages (what the store counts)
    snapshots: int = 0
    deaths: int = 0


@dataclass(slots=True)
class _Point:
    name: str
    kind: str  # number, bool or string
    integer: bool
    step: float  # a change of this size is past the deadband
    choices: tuple[str, ...]


@dataclass(slots=True)
class _Device:
    gateway: int
    device: str
    kind: str
    topic: str
    values: dict[str, Value]
    last_full_ms: int = -1
    last_ts: int = 0


@dataclass(slots=True)
class _Gateway:
    id: str
    site: str
    connection: int
    seq: int = 0
    devices: list[_Device] = field(default_factory=list)


def _points(profile: Profile) -> list[_Point]:
    out = []
    for p in profile.points:
        kind = p.value_kind
        integer = kind == "number" and p.type not in (DataType.FLOAT32, DataType.FLOAT64)
        integer = integer and p.scale == 1.0 and p.offset == 0.0
        step = max(p.deadband * 2, 1.0 if integer else 0.01)
        choices = tuple(p.enum.values()) if p.enum else ("ok", "fault")
        out.append(_Point(p.name, kind, integer, step, choices))
    return out


class SyntheticFleet:
    """The fleet's state and the messages it publishes. No IO: ``run_synthetic`` sends them."""

    def __init__(self, spec: SyntheticSpec, prefix: str = "shelterwatch/v1") -> None:
        self.spec = spec
        self.prefix = prefix
        self.stats = SyntheticStats()
        self._rng = random.Random(spec.seed)
        self._profiles = {dev: load_profile(name) for dev, name in SHELTER_DEVICES.items()}
        self._points = {dev: _points(p) for dev, p in self._profiles.items()}
        self.gateways: list[_Gateway] = []
        for i in range(1, spec.shelters + 1):
            site = f"{spec.site_prefix}-{i:05d}"
            gw = _Gateway(f"gw-{site}", site, (i - 1) % spec.connections)
            for dev, profile in self._profiles.items():
                gw.devices.append(
                    _Device(
                        len(self.gateways),
                        dev,
                        profile.kind,
                        data_topic(gw.id, dev, prefix),
                        {p.name: self._initial(p) for p in self._points[dev]},
                    )
                )
            self.gateways.append(gw)
        self._cursor = 0
        self._devices = len(self.gateways) * len(SHELTER_DEVICES)

    @property
    def devices(self) -> int:
        return self._devices

    def _initial(self, p: _Point) -> Value:
        if p.kind == "bool":
            return False
        if p.kind == "string":
            return p.choices[0]
        base = self._rng.uniform(10, 100)
        return int(base) if p.integer else round(base, 2)

    def births(self, now_ms: int) -> list[Publication]:
        """Each gateway's online state, then its devices' states: in the contract's order."""
        out = []
        for gw in self.gateways:
            state = GatewayState(
                online=True,
                ts=now_ms,
                site=gw.site,
                version=_VERSION,
                devices=[d.device for d in gw.devices],
                uptime_s=0.0,
            )
            out.append(
                Publication(
                    gateway_state_topic(gw.id, self.prefix), state.to_json(), True, gw.connection
                )
            )
            for d in gw.devices:
                profile = self._profiles[d.device]
                dev_state = DeviceState(
                    online=True,
                    ts=now_ms,
                    kind=profile.kind,
                    profile=profile.name,
                    points={
                        p.name: PointInfo(unit=p.unit, kind=p.value_kind)  # type: ignore[arg-type]
                        for p in profile.points
                    },
                )
                topic = device_state_topic(gw.id, d.device, self.prefix)
                out.append(Publication(topic, dev_state.to_json(), True, gw.connection))
        self.stats.births += len(out)
        return out

    def deaths(self, now_ms: int) -> list[Publication]:
        """Each gateway's offline state, as a gateway that stops cleanly publishes it."""
        out = [
            Publication(
                gateway_state_topic(gw.id, self.prefix),
                GatewayState(
                    online=False,
                    ts=now_ms,
                    site=gw.site,
                    version=_VERSION,
                    devices=[d.device for d in gw.devices],
                ).to_json(),
                True,
                gw.connection,
            )
            for gw in self.gateways
        ]
        self.stats.deaths += len(out)
        return out

    def next_data(self, now_ms: int) -> Publication:
        """The next device's data message: a snapshot when one is due, else its changes."""
        n_gw = len(self.gateways)
        i = self._cursor
        self._cursor = (i + 1) % self._devices
        # Gateways first, then devices: consecutive messages come from different gateways.
        gw = self.gateways[i % n_gw]
        dev = gw.devices[i // n_gw]
        # One point per series and millisecond: a device visited twice in one ms would
        # overwrite its own point in the store.
        ts = max(now_ms, dev.last_ts + 1)
        dev.last_ts = ts
        full = dev.last_full_ms < 0 or ts - dev.last_full_ms >= self.spec.snapshot_s * 1000
        changed = self._change(dev)
        if full:
            dev.last_full_ms = ts
            values = dict(dev.values)
            self.stats.snapshots += 1
        else:
            values = changed
        data = DeviceData(ts=ts, seq=gw.seq, site=gw.site, kind=dev.kind, values=values, full=full)
        gw.seq += 1
        self.stats.messages += 1
        self.stats.values += len(values)
        return Publication(dev.topic, data.to_json(), False, gw.connection)

    def _change(self, dev: _Device) -> dict[str, Value]:
        points = self._points[dev.device]
        rng = self._rng
        changed: dict[str, Value] = {}
        for p in rng.sample(points, 2 if len(points) > 2 else 1):
            old = dev.values[p.name]
            new: Value
            if p.kind == "bool":
                new = not old
            elif p.kind == "string":
                new = rng.choice([c for c in p.choices if c != old] or list(p.choices))
            elif p.integer:
                assert isinstance(old, int) and not isinstance(old, bool)
                new = old + rng.choice((-1, 1)) * int(p.step)
            else:
                assert isinstance(old, float)
                new = round(old + rng.choice((-1.0, 1.0)) * p.step, 3)
            dev.values[p.name] = changed[p.name] = new
        return changed


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _releaser(client: MqttClient) -> Callable[[asyncio.Future[None]], None]:
    return lambda _f: client.inflight.release()


async def _send(clients: list[MqttClient], pubs: list[Publication]) -> None:
    pending = []
    for pub in pubs:
        client = clients[pub.connection]
        await client.inflight.acquire()
        fut = client.start_publish(pub.topic, pub.payload, retain=pub.retain)
        fut.add_done_callback(_releaser(client))
        pending.append(fut)
    await asyncio.gather(*pending)


async def run_synthetic(
    spec: SyntheticSpec,
    mqtt: MqttSettings,
    stop: asyncio.Event,
    *,
    duration_s: float | None = None,
    max_messages: int | None = None,
    birth: bool = True,
) -> SyntheticStats:
    """Publish births, then data at ``spec.rate`` until ``stop`` is set, ``duration_s`` has
    passed or ``max_messages`` were sent; then the gateways' offline states, also when
    cancelled. Returns once the broker has acknowledged everything (QoS 1)."""
    fleet = SyntheticFleet(spec, mqtt.prefix)
    run_id = uuid.uuid4().hex[:6]
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(MqttClient(mqtt, f"sw-synthetic-{run_id}-{c}"))
            for c in range(spec.connections)
        ]
        if birth:
            await _send(clients, fleet.births(_now_ms()))
            log.info(
                "synthetic fleet: %d shelters (%d devices) born; data at %g msg/s",
                spec.shelters,
                fleet.devices,
                spec.rate,
            )
        cancelled = False
        try:
            await _data(fleet, clients, stop, duration_s, max_messages)
        except asyncio.CancelledError:
            cancelled = True  # say goodbye first, as a gateway stopping cleanly does
        if birth:
            with contextlib.suppress(ConnectError, TimeoutError):
                async with asyncio.timeout(30):
                    await _send(clients, fleet.deaths(_now_ms()))
        if cancelled:
            raise asyncio.CancelledError
    log.info(
        "synthetic fleet: %d data messages, %d values, %d snapshots",
        fleet.stats.messages,
        fleet.stats.values,
        fleet.stats.snapshots,
    )
    return fleet.stats


async def _data(
    fleet: SyntheticFleet,
    clients: list[MqttClient],
    stop: asyncio.Event,
    duration_s: float | None,
    max_messages: int | None,
) -> None:
    rate = fleet.spec.rate
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + duration_s if duration_s is not None else None
    pending: list[asyncio.Future[None]] = []
    sent = 0
    try:
        while not stop.is_set():
            now = loop.time()
            if deadline is not None and now >= deadline:
                break
            due = int((now - start) * rate) - sent
            if max_messages is not None:
                if sent >= max_messages:
                    break
                due = min(due, max_messages - sent)
            ms = _now_ms()
            for _ in range(max(due, 0)):
                pub = fleet.next_data(ms)
                client = clients[pub.connection]
                await client.inflight.acquire()
                fut = client.start_publish(pub.topic, pub.payload)
                fut.add_done_callback(_releaser(client))
                pending.append(fut)
                sent += 1
            if len(pending) > 10_000:
                await asyncio.gather(*pending)
                pending.clear()
            # A tick of 10 ms; the messages due in it go out together.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.01):
                    await stop.wait()
    finally:
        # Every publish started is acknowledged (or failed with the link) before returning.
        await asyncio.gather(*pending, return_exceptions=True)
