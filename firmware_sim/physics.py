"""Simulated shelter and siren-post physics: engineering values, no registers, no IO.

Each ``step(dt_s)`` advances the state and draws that step's sensor noise from a seeded
``random.Random``, so a run with the same seed and the same steps is reproducible, and
``values()`` returns the same readings until the next step. The attributes of the
subsystems (``shelter.vent.fan_fault``, ``shelter.env.occupancy``, ``siren.ac_power`` ...)
are the hooks scenarios set directly.

Values are labels for enum points, as the profiles name them, and stay inside what the
profiles' register types can encode. Siren posts are in ``firmware_sim.sirens``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from shelterwatch.contract import Value

__all__ = [
    "DOOR_TRAVEL_S",
    "SEAL_KPA",
    "Door",
    "Environment",
    "Physics",
    "Power",
    "ShelterPhysics",
    "Ventilation",
    "Water",
]

DOOR_TRAVEL_S = 3.0
SEAL_KPA = 50.0  # inflation pressure of a healthy door seal
DOOR_STALL_A = 9.0  # the door motor held against a jammed leaf


class Physics(Protocol):
    """What the device layer needs from a simulated site."""

    def values(self, kind: str) -> dict[str, Value]: ...

    def apply_writes(self, kind: str, writes: Mapping[str, Value]) -> None: ...

    def step(self, dt_s: float) -> None: ...


def _lag(current: float, target: float, dt_s: float, tau_s: float) -> float:
    """First-order lag; exact for any dt, so large steps stay stable."""
    return target + (current - target) * math.exp(-dt_s / tau_s)


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _label(value: Value, allowed: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{what} must be one of {allowed}, got {value!r}")
    return value


def _flag(value: Value, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be a bool, got {value!r}")
    return value


@dataclass
class Door:
    position: str = "open"  # open / moving / closed / locked
    # Momentary: reads back while the door acts on it, then returns to idle.
    command: str = "idle"
    cycle_count: int = 0
    seal_pressure: float = 0.0
    motor_current: float = 0.0
    # Fault hook (scenario seal_leak): kPa/s the closed door's seal loses instead of holding its
    # inflation pressure. 0 is a healthy seal.
    seal_leak_kpa_s: float = 0.0
    # Fault hook (scenario door_jam): the leaf does not move. A command is taken but never
    # completes, and the motor draws its stall current while it is held.
    jammed: bool = False
    _seal: float = 0.0
    _target: str = "open"
    _travel_left_s: float = 0.0

    @property
    def sealed(self) -> bool:
        return self.position in ("closed", "locked")

    @property
    def leakage(self) -> float:
        """How much air a closed door lets by, 0 (tight) to 1 (as if open).

        Only a leaking seal makes a closed door leak: the air escapes in proportion to how
        far the seal has deflated. An open door is 1.
        """
        if not self.sealed:
            return 1.0
        if self.seal_leak_kpa_s <= 0:
            return 0.0
        return _clamp(1.0 - self._seal / SEAL_KPA, 0.0, 1.0)

    def _move(self, target: str) -> None:
        if self.position == "moving":
            if self._target == target:
                return
            # Reversing mid-travel goes back over the distance already covered.
            self._travel_left_s = DOOR_TRAVEL_S - self._travel_left_s
        else:
            self._travel_left_s = DOOR_TRAVEL_S
        self.position, self._target = "moving", target

    def do(self, value: Value) -> None:
        command = _label(value, ("idle", "open", "close", "lock"), "door command")
        self.command = command
        if self.jammed:
            return
        if command == "close" and self.position != "closed" and self.position != "locked":
            self._move("closed")
        elif command == "open" and self.position != "open":
            self._move("open")
        elif command == "lock" and self.position == "closed":
            self.position = "locked"
        if self.position != "moving":
            self.command = "idle"  # done at once, or refused (lock only when closed)

    def step(self, dt_s: float, rng: random.Random) -> None:
        if self.position == "moving" and not self.jammed:
            self._travel_left_s -= dt_s
            if self._travel_left_s <= 0:
                self.position, self.command = self._target, "idle"
                if self._target == "closed":
                    self.cycle_count = min(self.cycle_count + 1, 2**32 - 1)
        if self.sealed and self.seal_leak_kpa_s > 0:
            # The leak outruns the seal's compressor: the pressure only goes down.
            self._seal = max(0.0, self._seal - self.seal_leak_kpa_s * dt_s)
        else:
            self._seal = _lag(self._seal, SEAL_KPA if self.sealed else 0.0, dt_s, 1.0)
        self.seal_pressure = max(0.0, self._seal + rng.gauss(0, 0.1))
        moving = self.position == "moving"
        if self.jammed and self.command != "idle":
            self.motor_current = max(0.0, DOOR_STALL_A + rng.gauss(0, 0.05))
        else:
            self.motor_current = max(0.0, 4.5 + rng.gauss(0, 0.05)) if moving else 0.0

    def values(self) -> dict[str, Value]:
        return {
            "position": self.position,
            "closed": self.sealed,
            "locked": self.position == "locked",
            "seal_pressure": self.seal_pressure,
            "motor_current": self.motor_current,
            "cycle_count": self.cycle_count,
            "command": self.command,
        }


@dataclass
class Ventilation:
    mode: str = "clean"  # clean / isolated / filtered
    fan_running: bool = True
    fan_fault: bool = False
    filter_alarm: bool = False
    fan_hours: float = 0.0
    filter_resistance: float = 180.0  # Pa across the filter absorber at filtered airflow
    # Fouling rate of the filter absorber while air goes through it.
    fouling_pa_per_h: float = 5.0
    overpressure: float = 0.0
    fan_current: float = 0.0
    airflow: float = 0.0
    filter_dp: float = 0.0
    _pressure: float = 0.0

    @property
    def moving_air(self) -> bool:
        return self.fan_running and not self.fan_fault

    def step(
        self, dt_s: float, rng: random.Random, door_sealed: bool, door_leakage: float = 0.0
    ) -> None:
        fresh = self.moving_air and self.mode != "isolated"
        filtered = fresh and self.mode == "filtered"
        if not fresh:
            target = 0.0
        elif not door_sealed:
            target = 1.0
        else:
            target = 40.0 if filtered else 3.0
            if door_leakage > 0:
                # A leaking door holds somewhere between closed and open.
                target += (1.0 - target) * door_leakage
        self._pressure = _lag(self._pressure, target, dt_s, 4.0)
        self.overpressure = _clamp(self._pressure + rng.gauss(0, 0.3), -3000.0, 3000.0)
        self.fan_current = max(0.0, 7.0 + rng.gauss(0, 0.05)) if self.moving_air else 0.0
        flow = {"clean": 1800.0, "filtered": 900.0}.get(self.mode, 0.0) if fresh else 0.0
        self.airflow = max(0.0, flow + rng.gauss(0, 5.0)) if flow else 0.0
        if filtered:
            self.filter_resistance = min(
                self.filter_resistance + self.fouling_pa_per_h * dt_s / 3600, 6000.0
            )
        # Without flow through the absorber there is no pressure drop across it.
        dp = self.filter_resistance + rng.gauss(0, 0.5) if filtered else 0.0
        self.filter_dp = _clamp(dp, 0.0, 6500.0)
        if self.moving_air:
            self.fan_hours = min(self.fan_hours + dt_s / 3600, 400_000_000.0)

    def apply(self, name: str, value: Value) -> None:
        if name == "mode":
            self.mode = _label(value, ("clean", "isolated", "filtered"), "ventilation mode")
        elif name == "fan_running":
            self.fan_running = _flag(value, name)
        else:
            raise ValueError(f"ventilation point {name!r} is not writable")

    def values(self) -> dict[str, Value]:
        return {
            "mode": self.mode,
            "fan_running": self.fan_running,
            "fan_current": self.fan_current,
            "airflow": self.airflow,
            "filter_dp": self.filter_dp,
            "overpressure": self.overpressure,
            "fan_fault": self.fan_fault,
            "filter_alarm": self.filter_alarm,
            "fan_hours": self.fan_hours,
        }


@dataclass
class Environment:
    occupancy: int = 0
    # Volume % of CO2 one person adds per second to a sealed shelter (about 1000 m3 of air).
    co2_per_person_s: float = 2e-6
    co2: float = 0.04  # volume %
    o2: float = 20.9
    temperature: float = 18.0
    humidity: float = 65.0
    # Fault hooks (scenario rising_humidity): while humidity_setpoint is set, humidity is driven
    # toward it at humidity_rate_pct_s (a wet wall; a dehumidifier after repair) on top of its
    # random walk. With humidity_release the setpoint is dropped once reached.
    humidity_setpoint: float | None = None
    humidity_rate_pct_s: float = 0.0
    humidity_release: bool = False
    _co2: float = 0.04

    def step(self, dt_s: float, rng: random.Random, fresh_air: bool) -> None:
        if fresh_air:
            self._co2 = _lag(self._co2, 0.04, dt_s, 300.0)
        else:
            self._co2 += self.occupancy * self.co2_per_person_s * dt_s
        self._co2 = _clamp(self._co2, 0.0, 6.0)
        self.co2 = _clamp(self._co2 + rng.gauss(0, 0.001), 0.0, 6.5)
        # Breathing uses a little more O2 than it gives off CO2 (respiratory quotient ~0.85).
        self.o2 = _clamp(20.9 - 1.15 * (self._co2 - 0.04) + rng.gauss(0, 0.01), 0.0, 25.0)
        self.temperature = 18.0 + rng.gauss(0, 0.05)
        walked = self.humidity + rng.gauss(0, 0.1 * math.sqrt(dt_s))
        if self.humidity_setpoint is not None:
            gap = self.humidity_setpoint - walked
            walked += math.copysign(min(abs(gap), self.humidity_rate_pct_s * dt_s), gap)
            if self.humidity_release and abs(self.humidity_setpoint - walked) < 0.5:
                self.humidity_setpoint, self.humidity_release = None, False
        # Reflect at the bounds so the walk does not stick to them.
        if walked < 40.0:
            walked = 80.0 - walked
        elif walked > 90.0:
            walked = 180.0 - walked
        self.humidity = _clamp(walked, 40.0, 90.0)

    def values(self) -> dict[str, Value]:
        return {
            "co2": self.co2,
            "o2": self.o2,
            "temperature": self.temperature,
            "humidity": self.humidity,
        }


@dataclass
class Water:
    tank_level: float = 80.0  # %
    pump_running: bool = False
    # Automatic control until a client writes the pump coil (hand mode); set True to return.
    pump_auto: bool = True
    drain_pct_s: float = 0.005
    fill_pct_s: float = 0.05
    inlet_pressure: float = 0.3

    def step(self, dt_s: float, rng: random.Random) -> None:
        level = self.tank_level - self.drain_pct_s * dt_s
        if self.pump_running:
            level += self.fill_pct_s * dt_s
        self.tank_level = _clamp(level, 0.0, 100.0)
        if self.pump_auto:
            if self.tank_level < 30.0:
                self.pump_running = True
            elif self.tank_level >= 95.0:
                self.pump_running = False
        elif self.tank_level >= 100.0:
            self.pump_running = False  # the high-level float switch stops it even in hand mode
        base = 0.35 if self.pump_running else 0.30
        self.inlet_pressure = _clamp(base + rng.gauss(0, 0.002), 0.0, 1.0)

    def apply(self, name: str, value: Value) -> None:
        if name != "pump_running":
            raise ValueError(f"water point {name!r} is not writable")
        self.pump_running = _flag(value, name)
        self.pump_auto = False

    def values(self) -> dict[str, Value]:
        return {
            "tank_level": self.tank_level,
            "inlet_pressure": self.inlet_pressure,
            "pump_running": self.pump_running,
            "low_level": self.tank_level < 20.0,
        }


@dataclass
class Power:
    mains_present: bool = True
    generator_start: bool = False
    battery_voltage: float = 26.8
    battery_room_temperature: float = 20.0

    def step(self, dt_s: float, rng: random.Random) -> None:
        self.battery_voltage = 26.8 + rng.gauss(0, 0.02)
        self.battery_room_temperature = 20.0 + rng.gauss(0, 0.1)

    def apply(self, name: str, value: Value) -> None:
        if name != "generator_start":
            raise ValueError(f"power point {name!r} is not writable")
        self.generator_start = _flag(value, name)

    def values(self) -> dict[str, Value]:
        return {
            "mains_present": self.mains_present,
            "generator_running": self.generator_start,
            "generator_start": self.generator_start,
            "battery_voltage": self.battery_voltage,
            "battery_room_temperature": self.battery_room_temperature,
        }


class ShelterPhysics:
    """One shelter: blast door, ventilation, air, water and power, coupled where it matters."""

    kinds = ("door", "ventilation", "environment", "water", "power")

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.door = Door(cycle_count=self.rng.randrange(100, 2000))
        self.vent = Ventilation(
            fan_hours=round(self.rng.uniform(500, 3000), 1),
            filter_resistance=round(self.rng.uniform(150, 200), 1),
        )
        self.env = Environment(humidity=self.rng.uniform(55, 75))
        self.water = Water(tank_level=self.rng.uniform(60, 90))
        self.power = Power()
        self.step(0.0)

    def step(self, dt_s: float) -> None:
        rng = self.rng
        self.door.step(dt_s, rng)
        self.vent.step(dt_s, rng, self.door.sealed, self.door.leakage)
        self.env.step(dt_s, rng, self.vent.moving_air and self.vent.mode != "isolated")
        self.water.step(dt_s, rng)
        self.power.step(dt_s, rng)

    def values(self, kind: str) -> dict[str, Value]:
        parts = {
            "door": self.door.values,
            "ventilation": self.vent.values,
            "environment": self.env.values,
            "water": self.water.values,
            "power": self.power.values,
        }
        if kind not in parts:
            raise KeyError(f"a shelter has no {kind!r} device")
        return parts[kind]()

    def apply_writes(self, kind: str, writes: Mapping[str, Value]) -> None:
        for name, value in writes.items():
            self.apply_write(kind, name, value)

    def apply_write(self, kind: str, name: str, value: Value) -> None:
        if kind == "door" and name == "command":
            self.door.do(value)
        elif kind == "ventilation":
            self.vent.apply(name, value)
        elif kind == "water":
            self.water.apply(name, value)
        elif kind == "power":
            self.power.apply(name, value)
        else:
            raise ValueError(f"{kind} point {name!r} is not writable")
