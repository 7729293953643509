"""A fleet of simulated shelters and siren posts, one Modbus TCP server per device.

``serve_rtu`` also puts chosen devices on a serial port as Modbus RTU units (one RS-485 bus,
several unit ids), answering from the same registers as their TCP servers.

Siren posts come in two kinds: ``sirens`` controllers with built-in signals (``siren``
profile) and ``relay_sirens`` switched by a relay (``siren_relay``), numbered on from the
first kind. With ``sirens_per_server`` > 1 the posts share Modbus TCP servers, that many units
each (``SimBank``), and ``gateway_config`` gives one gateway per server: 1,000 sirens run as
50 servers of 20 units behind 50 gateways.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from firmware_sim.device import SimBank, SimDevice, SimSerialBus
from firmware_sim.physics import Physics, ShelterPhysics
from firmware_sim.scenarios import SCENARIOS, ActiveFault, OptionValue, ScenarioError, SiteHandle
from firmware_sim.sirens import SirenPhysics, SirenPost, SirenRelayPhysics
from shelterwatch.contract import SLUG_PATTERN, SignalSpec, Value
from shelterwatch.profiles import load_profile

__all__ = ["SHELTER_DEVICES", "Fleet", "FleetSpec", "run_fleet"]

log = logging.getLogger(__name__)

# Device id -> profile, per shelter.
SHELTER_DEVICES: dict[str, str] = {
    "door": "blast_door",
    "vent": "ventilation",
    "water": "water",
    "env": "environment",
    "power": "power",
}
# A stalled event loop must not make the physics jump: cap one tick's simulated time.
_MAX_TICK_FACTOR = 5.0


class FleetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # 1,000 shelters are 5,000 device servers: they start in about a second and their physics
    # takes about 15 % of a core. Polling them takes a gateway per shelter, which one machine
    # cannot run; for load beyond that, firmware_sim.synthetic speaks the contract directly.
    shelters: Annotated[int, Field(ge=0, le=1000)] = 3
    sirens: Annotated[int, Field(ge=0, le=5000)] = 4
    relay_sirens: Annotated[int, Field(ge=0, le=5000)] = 0
    # 1: every siren post has its own server. More: posts share servers, as units 1..n.
    sirens_per_server: Annotated[int, Field(ge=1, le=247)] = 1
    # The built-in signals of the simulated controllers, by number; None: the catalogue's.
    siren_signals: dict[int, SignalSpec] | None = None
    # The districts the gateway configs give their sites, in turn: shelter-01, siren-01 and
    # siren-bank-01 the first, shelter-02 ... the second, and so on. Empty: no district.
    districts: tuple[Annotated[str, Field(pattern=SLUG_PATTERN)], ...] = ("xihu", "shangcheng")
    host: str = "127.0.0.1"
    # 0: every device gets a free port; otherwise devices take base_port, base_port + 1, ...
    base_port: Annotated[int, Field(ge=0, le=65535)] = 0
    tick_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    seed: int = 0


class Fleet:
    """``async with Fleet(spec) as fleet:`` runs every device server and the physics."""

    def __init__(self, spec: FleetSpec | None = None) -> None:
        self.spec = spec = spec or FleetSpec()
        self.shelters: dict[str, ShelterPhysics] = {}
        self.sirens: dict[str, SirenPost] = {}
        self.devices: list[SimDevice] = []
        self.banks: list[SimBank] = []
        self._gateway_of: dict[str, tuple[str, str]] = {}  # site -> (gateway id, its site)
        self._district_of: dict[str, str] = {}  # a gateway's site -> its district
        port = spec.base_port
        for i in range(1, spec.shelters + 1):
            site = f"shelter-{i:02d}"
            self._assign_district(site, i)
            shelter = self.shelters[site] = ShelterPhysics(seed=spec.seed * 1000 + i)
            for device_id, profile in SHELTER_DEVICES.items():
                self.devices.append(self._device(site, device_id, profile, shelter, port))
                port += 1 if port else 0
        posts: list[SimDevice] = []
        for i in range(1, spec.sirens + spec.relay_sirens + 1):
            site = f"siren-{i:02d}"
            self._assign_district(site, i)
            seed = spec.seed * 1000 + 500 + i
            siren: SirenPost
            if i <= spec.sirens:
                siren = SirenPhysics(seed=seed, signals=spec.siren_signals)
                profile = "siren"
            else:
                siren, profile = SirenRelayPhysics(seed=seed), "siren_relay"
            self.sirens[site] = siren
            posts.append(self._device(site, "siren", profile, siren, port))
            if spec.sirens_per_server == 1:
                port += 1 if port else 0
        self.devices.extend(posts)
        if spec.sirens_per_server > 1:
            size = spec.sirens_per_server
            for b, first in enumerate(range(0, len(posts), size), start=1):
                bank = SimBank(posts[first : first + size], host=spec.host, port=port)
                self.banks.append(bank)
                self._assign_district(f"siren-bank-{b:02d}", b)
                port += 1 if port else 0
                for device in bank.devices:
                    self._gateway_of[device.site] = (f"gw-bank-{b:02d}", f"siren-bank-{b:02d}")
        if port > 65536:
            raise ValueError(f"base_port {spec.base_port} leaves too few ports for the fleet")
        self._by_key = {(d.site, d.device_id): d for d in self.devices}
        self._paused = False
        self._task: asyncio.Task[None] | None = None
        self.buses: list[SimSerialBus] = []
        self._faults: dict[tuple[str, str], ActiveFault] = {}
        # comm_loss awaits servers: one fault change at a time, so two requests for the same
        # fault cannot both pass the "already active" check.
        self._fault_lock = asyncio.Lock()

    def _assign_district(self, site: str, number: int) -> None:
        districts = self.spec.districts
        if districts:
            self._district_of[site] = districts[(number - 1) % len(districts)]

    def district(self, site: str) -> str | None:
        """The district the gateway config gives ``site`` (a siren post in a bank: its
        bank's), or None."""
        banked = self._gateway_of.get(site)
        return self._district_of.get(banked[1] if banked else site)

    def _device(
        self, site: str, device_id: str, profile: str, physics: Physics, port: int
    ) -> SimDevice:
        return SimDevice(
            site, device_id, load_profile(profile), physics, host=self.spec.host, port=port
        )

    async def __aenter__(self) -> Self:
        try:
            for device in self.devices:
                await device.start()  # a banked device starts its bank, once
        except BaseException:
            await self._stop_all()
            raise
        self._task = asyncio.create_task(self._run_physics(), name="firmware_sim physics")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stop_all()

    async def _stop_all(self) -> None:
        for bus in self.buses:
            await bus.stop()
        self.buses.clear()
        for device in self.devices:
            await device.stop()

    async def serve_rtu(
        self,
        port: str,
        units: Mapping[int, tuple[str, str]],
        *,
        baudrate: int = 9600,
        parity: Literal["N", "E", "O"] = "N",
        stopbits: Literal[1, 2] = 1,
    ) -> SimSerialBus:
        """Serve devices as Modbus RTU units on serial port ``port`` until the fleet stops.

        ``units`` maps a unit id to a (site, device id): ``{1: ("shelter-01", "water"),
        2: ("shelter-01", "env")}`` puts two devices on one bus.
        """
        bus = SimSerialBus(
            port,
            {unit: self.device(*key) for unit, key in units.items()},
            baudrate=baudrate,
            parity=parity,
            stopbits=stopbits,
        )
        await bus.start()
        self.buses.append(bus)
        return bus

    async def _run_physics(self) -> None:
        tick = self.spec.tick_s
        last = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            elapsed, last = min(now - last, tick * _MAX_TICK_FACTOR), now
            if not self._paused:
                try:
                    self.step(elapsed)
                except Exception:
                    # Nobody awaits this task until the fleet exits: say so now, not then.
                    log.exception("simulator physics failed; registers are frozen")
                    raise

    def step(self, dt_s: float) -> None:
        """Advance every site's physics by dt_s and refresh all registers (works while paused)."""
        sites: list[Physics] = [*self.shelters.values(), *self.sirens.values()]
        for physics in sites:
            physics.step(dt_s)
        for device in self.devices:
            device.refresh()

    def pause(self) -> None:
        """Freeze the physics; client writes still go through."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def sites(self) -> list[str]:
        return [*self.shelters, *self.sirens]

    def device(self, site: str, device_id: str) -> SimDevice:
        try:
            return self._by_key[(site, device_id)]
        except KeyError:
            raise KeyError(f"no simulated device {site}/{device_id}") from None

    def value(self, site: str, device_id: str, point: str) -> Value:
        """The value a Modbus client decodes from the device's registers right now."""
        return self.device(site, device_id).value(point)

    async def stop_device(self, site: str, device_id: str) -> None:
        await self.device(site, device_id).stop()

    async def start_device(self, site: str, device_id: str) -> None:
        await self.device(site, device_id).start()

    @property
    def faults(self) -> list[ActiveFault]:
        """The active faults, in the order they were switched on."""
        return list(self._faults.values())

    def _site(self, site: str) -> SiteHandle:
        physics: ShelterPhysics | SirenPost | None = self.shelters.get(site)
        if physics is None:
            physics = self.sirens.get(site)
        if physics is None:
            raise ScenarioError(f"no simulated site {site!r} (sites: {', '.join(self.sites)})")
        devices = {d.device_id: d for d in self.devices if d.site == site}
        return SiteHandle(site, physics, devices)

    async def fault(self, site: str, scenario: str, /, **options: OptionValue) -> ActiveFault:
        """Switch fault ``scenario`` on at ``site`` (see ``firmware_sim.scenarios.SCENARIOS``).

        Options override the scenario's defaults (``rate_kpa_s=0.05``); strings are parsed,
        as they come from a command line. Raises ScenarioError for an unknown site, scenario
        or option, a scenario that does not fit the site, or a fault already active there.
        """
        handle = self._site(site)
        try:
            spec = SCENARIOS[scenario]
        except KeyError:
            raise ScenarioError(
                f"no fault scenario {scenario!r} (scenarios: {', '.join(SCENARIOS)})"
            ) from None
        if handle.kind not in spec.kinds:
            raise ScenarioError(f"{scenario} is not a fault of a {handle.kind} ({site})")
        parsed = spec.parse_options(options)
        async with self._fault_lock:
            if (site, scenario) in self._faults:
                raise ScenarioError(f"{scenario} is already active at {site}; repair it first")
            repair = await spec.inject(handle, parsed)
            active = ActiveFault(site, scenario, parsed, _repair=repair)
            self._faults[(site, scenario)] = active
        log.info("fault %s switched on at %s %s", scenario, site, parsed)
        return active

    async def repair(self, site: str, scenario: str) -> None:
        """Undo an active fault. Raises ScenarioError if it is not active."""
        async with self._fault_lock:
            active = self._faults.get((site, scenario))
            if active is None:
                raise ScenarioError(f"{scenario} is not active at {site}")
            await active.repair()
            del self._faults[(site, scenario)]
        log.info("fault %s repaired at %s", scenario, site)

    def gateway_config(
        self, broker_host: str, broker_port: int, prefix: str
    ) -> list[dict[str, Any]]:
        """One gateway config per site, pointing at this fleet's devices.

        Siren posts in banks get one gateway per bank (``gw-bank-01``, site
        ``siren-bank-01``), each post a device named after its site, on the bank's
        host:port with its own unit id. ``district`` is there when the spec names districts.
        """
        configs: dict[str, dict[str, Any]] = {}
        for d in self.devices:
            banked = self._gateway_of.get(d.site)
            gateway, site = banked or (f"gw-{d.site}", d.site)
            config = configs.get(gateway)
            if config is None:
                config = configs[gateway] = {"gateway_id": gateway, "site": site}
                if site in self._district_of:
                    config["district"] = self._district_of[site]
                config["mqtt"] = {"host": broker_host, "port": broker_port, "prefix": prefix}
                config["devices"] = []
            config["devices"].append(
                {
                    "id": d.site if banked else d.device_id,
                    "profile": d.profile.name,
                    "host": d.host,
                    "port": d.port,
                    "unit_id": d.unit_id,
                }
            )
        return list(configs.values())


async def run_fleet(spec: FleetSpec, stop_event: asyncio.Event) -> None:
    """Run a fleet until stop_event is set (the CLI's ``sim`` command)."""
    async with Fleet(spec) as fleet:
        for device in fleet.devices:
            log.info(
                "simulated %s/%s (%s) listening on %s:%d unit %d",
                device.site,
                device.device_id,
                device.profile.name,
                device.host,
                device.port,
                device.unit_id,
            )
        await stop_event.wait()
