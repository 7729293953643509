"""Fault scenarios: what each one does to a simulated site, and how repairing it undoes that.

A scenario is switched on for one site with options (rates have test-friendly defaults, so an
effect shows within tens of seconds; pass smaller ones for a realistic pace) and returns its
own repair, which restores what it saved when it was switched on. Scenarios only set the
physics' and devices' fault hooks (``Door.seal_leak_kpa_s``, ``Ventilation.fan_fault``,
``SimDevice.stuck`` ...) and stop or start device servers; the physics does the rest, so a
fault shows in every dependent value (a failed fan also loses the overpressure).

``Fleet.fault`` and ``Fleet.repair`` are the way in; ``docs/simulator.md`` describes each
scenario for people.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from firmware_sim.device import SimDevice
from firmware_sim.physics import ShelterPhysics
from firmware_sim.sirens import SirenPost

__all__ = [
    "SCENARIOS",
    "ActiveFault",
    "OptionValue",
    "Scenario",
    "ScenarioError",
    "SiteHandle",
    "SiteKind",
]

SiteKind = Literal["shelter", "siren"]
OptionValue = bool | float | str
Repair = Callable[[], Awaitable[None]]


class ScenarioError(ValueError):
    """A fault request that cannot be carried out: unknown site or scenario, bad option,
    a fault already active, or a repair of one that is not."""


@dataclass(frozen=True)
class SiteHandle:
    """What a scenario may touch: one site's physics and its devices by device id."""

    name: str
    physics: ShelterPhysics | SirenPost
    devices: Mapping[str, SimDevice]

    @property
    def kind(self) -> SiteKind:
        return "shelter" if isinstance(self.physics, ShelterPhysics) else "siren"

    @property
    def shelter(self) -> ShelterPhysics:
        assert isinstance(self.physics, ShelterPhysics), self.name
        return self.physics

    @property
    def siren(self) -> SirenPost:
        assert isinstance(self.physics, SirenPost), self.name
        return self.physics


Injector = Callable[[SiteHandle, Mapping[str, OptionValue]], Awaitable[Repair]]


@dataclass(frozen=True)
class Scenario:
    name: str
    kinds: frozenset[SiteKind]
    effect: str
    repair: str
    # Option name -> default; the default's type is the option's type. Numbers must be > 0.
    options: Mapping[str, OptionValue]
    inject: Injector

    def parse_options(self, given: Mapping[str, object]) -> dict[str, OptionValue]:
        """The defaults overlaid with ``given``, each checked against its default's type.

        Strings are accepted for numbers and flags, so a command line can pass ``rate=2``.
        """
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise ScenarioError(f"{self.name} has no option {unknown[0]!r} (options: {known})")
        parsed = dict(self.options)
        for name, raw in given.items():
            parsed[name] = _coerce(self.name, name, self.options[name], raw)
        return parsed


def _coerce(scenario: str, name: str, default: OptionValue, raw: object) -> OptionValue:
    what = f"{scenario} option {name}"
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "yes", "on", "1"):
            return True
        if isinstance(raw, str) and raw.lower() in ("false", "no", "off", "0"):
            return False
        raise ScenarioError(f"{what} must be true or false, got {raw!r}")
    if isinstance(default, float):
        number: float | None = None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            number = float(raw)
        elif isinstance(raw, str):
            try:
                number = float(raw)
            except ValueError:
                number = None
        if number is None or not math.isfinite(number) or number <= 0:
            raise ScenarioError(f"{what} must be a number > 0, got {raw!r}")
        return number
    if not isinstance(raw, str):
        raise ScenarioError(f"{what} must be a string, got {raw!r}")
    return raw


@dataclass
class ActiveFault:
    site: str
    scenario: str
    options: dict[str, OptionValue]
    since: float = field(default_factory=time.time)  # epoch seconds
    _repair: Repair | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "site": self.site,
            "scenario": self.scenario,
            "options": dict(self.options),
            "since": self.since,
        }

    async def repair(self) -> None:
        undo, self._repair = self._repair, None
        if undo is not None:
            await undo()


def _float(options: Mapping[str, OptionValue], name: str) -> float:
    value = options[name]
    assert isinstance(value, float) and not isinstance(value, bool), name
    return value


def _str(options: Mapping[str, OptionValue], name: str) -> str:
    value = options[name]
    assert isinstance(value, str), name
    return value


# ---------------------------------------------------------------------------- shelters


async def _seal_leak(site: SiteHandle, options: Mapping[str, OptionValue]) -> Repair:
    door = site.shelter.door
    before = door.seal_leak_kpa_s
    door.seal_leak_kpa_s = _float(options, "rate_kpa_s")

    async def repair() -> None:
        door.seal_leak_kpa_s = before  # the seal's compressor inflates it again within seconds

    return repair


async def _door_jam(site: SiteHandle, options: Mapping[str, OptionValue]) -> Repair:
    door = site.shelter.door
    door.jammed = True

    async def repair() -> None:
        door.jammed = False
        # The command held during the jam is dropped: a person orders the door again.
        if door.position != "moving":
            door.command = "idle"

    return repair


async def _filter_clogging(site: SiteHandle, options: Mapping[str, OptionValue]) -> Repair:
    vent = site.shelter.vent
    fouling, resistance, mode = vent.fouling_pa_per_h, vent.filter_resistance, vent.mode
    vent.fouling_pa_per_h = _float(options, "rate_pa_s") * 3600
    # The filter absorber only has a pressure drop with air going through it, so without
    # filtered mode the clogging would not show on filter_dp at all.
    switched = options["filtered"] is True and vent.mode != "filtered"
    if switched:
        vent.mode = "filtered"

    async def repair() -> None:
        # A new filter: back to the resistance and fouling it had before the fault.
        vent.fouling_pa_per_h, vent.filter_resistance = fouling, resistance
        if switched and vent.mode == "filtered":
            vent.mode = mode  # unless someone chose another mode meanwhile

    return repair


async def _fan_failure(site: SiteHandle, options: Mapping[str, OptionValue]) -> Repair:
    vent = site.shelter.vent
    vent.fan_fault = True

    async def repair() -> None:
        vent.fan_fault = False

    return repair


async def _water_leak(site: SiteHandle, options: Mapping[str, OptionValue]) -> Repair:
    water = site.shelter.water
    before = water.drain_pct_s
    water.drain_pct_s = _float(options, "rate_pct_s")

    async def repair() -> None:
        water.drain_pct_s = before  # the pump (in auto) then refills the tank at its own pace

    return repair


async def _rising_humidity(site: SiteHandle, options: Mapping[str, OptionValue]) -> Repair:
    env = site.shelter.env
    before = env.humidity
    env.humidity_setpoint = _float(options, "target_rh")
    env.humidity_rate_pct_s = _float(options, "rate_pct_s")
    env.humidity_release = False

    async def repair() -> None:
        # Dehumidify back to where it was at the same rate, then wander freely again.
        env.humidity_setpoint, env.humidity_release = before, True

    return repair


# ---------------------------------------------------------------------------- siren posts


async def _siren_battery_decay(site: SiteHandle, options: Mapping[str, OptionValue]) -> Repair:
    siren = site.siren
    rate, floor = siren.battery_fault_v_s, siren.battery_floor_v
    siren.battery_fault_v_s = _float(options, "rate_v_s")
    siren.battery_floor_v = _float(options, "floor_v")

    async def repair() -> None:
        # A new battery: on mains it reads full again at the next step.
        siren.battery_fault_v_s, siren.battery_floor_v = rate, floor

    return repair


async def _siren_amplifier_fault(site: SiteHandle, options: Mapping[str, OptionValue]) -> Repair:
    siren = site.siren
    siren.amplifier_fault = True

    async def repair() -> None:
        siren.amplifier_fault = False

    return repair


async def _siren_driver_fault(site: SiteHandle, options: Mapping[str, OptionValue]) -> Repair:
    siren = site.siren
    siren.driver_fault = True

    async def repair() -> None:
        siren.driver_fault = False

    return repair


# ---------------------------------------------------------------------------- any site


async def _power_loss(site: SiteHandle, options: Mapping[str, OptionValue]) -> Repair:
    if site.kind == "shelter":
        power = site.shelter.power
        power.mains_present = False

        async def repair_shelter() -> None:
            power.mains_present = True

        return repair_shelter
    siren = site.siren
    before = siren.ac_power
    siren.ac_power = False

    async def repair_siren() -> None:
        siren.ac_power = before

    return repair_siren


_DEFAULT_SENSOR: dict[SiteKind, tuple[str, str]] = {
    "shelter": ("env", "co2"),
    "siren": ("siren", "battery_voltage"),
}


def _devices(site: SiteHandle, device_id: str) -> list[SimDevice]:
    if not device_id:
        return list(site.devices.values())
    if device_id not in site.devices:
        known = ", ".join(site.devices)
        raise ScenarioError(f"{site.name} has no device {device_id!r} (devices: {known})")
    return [site.devices[device_id]]


async def _stuck_sensor(site: SiteHandle, options: Mapping[str, OptionValue]) -> Repair:
    default_device, default_point = _DEFAULT_SENSOR[site.kind]
    device_id = _str(options, "device") or default_device
    (device,) = _devices(site, device_id)
    name = _str(options, "point") or default_point
    try:
        point = device.profile.point(name)
    except KeyError:
        known = ", ".join(p.name for p in device.profile.points if not p.writable)
        raise ScenarioError(
            f"{site.name}/{device_id} has no point {name!r} (points: {known})"
        ) from None
    if point.writable:
        raise ScenarioError(f"{site.name}/{device_id} {name} is a setting, not a sensor reading")
    if name in device.stuck:
        raise ScenarioError(f"{site.name}/{device_id} {name} is stuck already")
    device.stuck[name] = device.physics.values(device.profile.kind)[name]
    device.refresh()

    async def repair() -> None:
        device.stuck.pop(name, None)
        device.refresh()

    return repair


async def _comm_loss(site: SiteHandle, options: Mapping[str, OptionValue]) -> Repair:
    # Only servers that were running come back: a fleet that never started stays silent.
    silenced = [d for d in _devices(site, _str(options, "device")) if d.running]
    for device in silenced:
        await device.stop()

    async def repair() -> None:
        for device in silenced:
            await device.start()  # same port as before: it was fixed at the first start

    return repair


_SHELTER: frozenset[SiteKind] = frozenset({"shelter"})
_SIREN: frozenset[SiteKind] = frozenset({"siren"})
_ANY: frozenset[SiteKind] = frozenset({"shelter", "siren"})

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "seal_leak",
            _SHELTER,
            "door seal_pressure falls by rate_kpa_s while the door is closed (from 50 kPa); the "
            "closed door leaks in proportion, so filtered-mode overpressure drops below 30 Pa",
            "the seal re-inflates to 50 kPa within seconds and the overpressure recovers",
            {"rate_kpa_s": 1.0},
            _seal_leak,
        ),
        Scenario(
            "door_jam",
            _SHELTER,
            "the door leaf does not move: open, close and lock commands are taken but never "
            "complete (command reads back, position stays), and the motor draws stall current",
            "the leaf moves again; a command held during the jam is dropped",
            {},
            _door_jam,
        ),
        Scenario(
            "filter_clogging",
            _SHELTER,
            "filter absorber resistance rises by rate_pa_s, shown on vent filter_dp; with "
            "filtered=true (default) the ventilation is switched to filtered mode so it shows",
            "a new filter: filter_dp back to its pre-fault value, the mode back if it was switched",
            {"rate_pa_s": 3.0, "filtered": True},
            _filter_clogging,
        ),
        Scenario(
            "fan_failure",
            _SHELTER,
            "vent fan_fault set: fan_current and airflow 0, overpressure falls to 0, CO2 rises "
            "with occupancy as in isolated mode",
            "fan_fault cleared; the fan runs again if fan_running is on",
            {},
            _fan_failure,
        ),
        Scenario(
            "water_leak",
            _SHELTER,
            "water tank_level drains at rate_pct_s, faster than the pump fills (0.05 %/s), so it "
            "falls below the 20 % reserve (low_level) and on to 0",
            "the drain is back to normal and the pump refills the tank",
            {"rate_pct_s": 2.0},
            _water_leak,
        ),
        Scenario(
            "rising_humidity",
            _SHELTER,
            "env humidity climbs at rate_pct_s toward target_rh (past 75 %RH) and stays there",
            "humidity falls back at the same rate to its pre-fault value, then wanders as before",
            {"target_rh": 85.0, "rate_pct_s": 0.5},
            _rising_humidity,
        ),
        Scenario(
            "siren_battery_decay",
            _SIREN,
            "siren battery_voltage falls by rate_v_s even on mains, from 27.2 V to floor_v",
            "a new battery: 27.2 V at the next step on mains",
            {"rate_v_s": 0.2, "floor_v": 22.0},
            _siren_battery_decay,
        ),
        Scenario(
            "siren_amplifier_fault",
            _SIREN,
            "siren amplifier_fault set: state fault, a sounding signal stops, sound commands do "
            "nothing and a silent self-test ends with result fail",
            "amplifier_fault cleared; the state is idle at the next step",
            {},
            _siren_amplifier_fault,
        ),
        Scenario(
            "siren_driver_fault",
            _SIREN,
            "the loop from the siren driver to its speakers opens: nothing sounds (a controller "
            "reads state fault, a relay post draws no current and reads loop_ok false); the "
            "controller's line supervision records a failed self-test, reason driver_loop",
            "the loop is closed again; the line supervision records a passed self-test",
            {},
            _siren_driver_fault,
        ),
        Scenario(
            "stuck_sensor",
            _ANY,
            "one read-only point (default env co2 on a shelter, siren battery_voltage on a "
            "siren post) keeps its current register value: a flat line",
            "the point follows the physics again at once",
            {"device": "", "point": ""},
            _stuck_sensor,
        ),
        Scenario(
            "power_loss",
            _ANY,
            "mains power fails: a shelter's power mains_present reads false; a siren post runs "
            "on its battery (ac_power false, the battery drains, a self-test reports "
            "no_ac_power)",
            "mains power is back",
            {},
            _power_loss,
        ),
        Scenario(
            "comm_loss",
            _ANY,
            "the site's Modbus servers (or only device=ID) stop listening and drop their "
            "clients; the physics goes on",
            "the servers listen again on the same ports",
            {"device": ""},
            _comm_loss,
        ),
    )
}
