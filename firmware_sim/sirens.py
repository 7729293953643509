"""Simulated siren posts: a controller with built-in signals, and a relay-switched siren.

Both keep a **timeline**: the (start, end) times, as ``clock()`` floats (``time.time`` by
default), during which the siren actually made sound. Tests compare it with the signal that
was ordered, so it is computed from the clock, not from the physics ticks: a built-in signal
sounds from the instant the ``sound`` write lands, following its real segment pattern, and a
relay siren sounds from the instant the relay write lands. Ticks only update what the
registers read (state, battery, current) and notice faults.

``SirenPhysics`` serves the ``siren`` profile. Its signals come from the catalogue
(``shelterwatch.signals.builtin_signals()``, by ``number``); pass ``signals={2: spec}`` to give
it a table of short patterns for tests. The ``continuous`` signal sounds until ``stop``, for
patterns the gateway times itself (capped at an hour, as a real controller's runaway guard).

``SirenRelayPhysics`` serves the ``siren_relay`` profile: it sounds while its relay is on and
healthy, drawing current; with the amplifier or the driver loop faulty the relay clicks and
nothing sounds, and the current stays near zero.

Fault hooks (set by scenarios): ``amplifier_fault``, ``driver_fault`` (the driver loop is
open), ``ac_power``, ``battery_fault_v_s`` and ``battery_floor_v``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from firmware_sim.physics import _flag, _label
from shelterwatch.contract import SignalSpec, Value
from shelterwatch.profiles import load_profile
from shelterwatch.signals import builtin_signals

__all__ = [
    "BATTERY_LOW_V",
    "CONTINUOUS_MAX_S",
    "SILENT_TEST_S",
    "SOUND_CURRENT_A",
    "SirenPhysics",
    "SirenPost",
    "SirenRelayPhysics",
    "builtin_table",
    "on_intervals",
]

SILENT_TEST_S = 2.0
CONTINUOUS_MAX_S = 3600.0
BATTERY_LOW_V = 24.0  # a self-test fails below this (a 24 V system that cannot carry a signal)
SOUND_CURRENT_A = 8.0  # what a healthy driver draws while sounding
_FULL_V = 27.2

# Signal label <-> register number, as the siren profile names them.
_SIGNAL_ENUM: dict[int, str] = dict(load_profile("siren").point("signal").enum or {})
SIGNAL_NUMBERS: dict[str, int] = {label: number for number, label in _SIGNAL_ENUM.items()}
_CONTINUOUS = "continuous"


def builtin_table() -> dict[int, SignalSpec]:
    """The catalogue's numbered signals, by number: what a factory controller holds."""
    return {d.number: d.spec() for d in builtin_signals().values() if d.number is not None}


def on_intervals(signal: SignalSpec) -> list[tuple[float, float]]:
    """(start, end) offsets of sound from the signal's start; touching sounds merge."""
    out: list[tuple[float, float]] = []
    t = 0.0
    for _ in range(signal.repeat):
        for segment in signal.segments:
            start, end = t, t + segment.on_s
            if out and abs(out[-1][1] - start) < 1e-9:
                out[-1] = (out[-1][0], end)
            else:
                out.append((start, end))
            t = end + segment.off_s
    return out


@dataclass
class _Play:
    """One signal being played: sound at start + each interval."""

    start: float
    intervals: list[tuple[float, float]]

    @property
    def end(self) -> float:
        return self.start + self.intervals[-1][1]

    def sound_until(self, t: float) -> list[tuple[float, float]]:
        """The absolute sound intervals up to time t."""
        return [
            (self.start + a, min(self.start + b, t))
            for a, b in self.intervals
            if self.start + a < t
        ]


@dataclass
class SirenPost:
    """What both kinds of siren post share: power, battery, faults and the timeline."""

    seed: int = 0
    clock: Callable[[], float] = time.time
    ac_power: bool = True
    amplifier_fault: bool = False
    # Fault hook (scenario siren_driver_fault): the loop from the driver to the speakers is open.
    driver_fault: bool = False
    battery_voltage: float = _FULL_V
    # Fault hooks (scenario siren_battery_decay): V/s the battery loses on top of any discharge,
    # even on mains (a dead cell, a failed charger), down to battery_floor_v.
    battery_fault_v_s: float = 0.0
    battery_floor_v: float = 21.0
    _battery: float = _FULL_V
    _timeline: list[tuple[float, float]] = field(default_factory=list)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    @property
    def can_sound(self) -> bool:
        return not self.amplifier_fault and not self.driver_fault

    @property
    def timeline(self) -> list[tuple[float, float]]:
        """Every (start, end) of sound so far; a sound going on now ends at ``clock()``."""
        return list(self._timeline)

    def _step_battery(self, dt_s: float) -> None:
        if self.ac_power and self.battery_fault_v_s <= 0:
            self._battery = _FULL_V
        else:
            rate = (0.0 if self.ac_power else 0.0005) + self.battery_fault_v_s
            self._battery = max(self.battery_floor_v, self._battery - rate * dt_s)
        self.battery_voltage = self._battery + self.rng.gauss(0, 0.02)

    def values(self, kind: str = "siren") -> dict[str, Value]:
        raise NotImplementedError

    def apply_writes(self, kind: str, writes: Mapping[str, Value]) -> None:
        raise NotImplementedError

    def step(self, dt_s: float) -> None:
        raise NotImplementedError

    def _check(self, kind: str) -> None:
        if kind != "siren":
            raise KeyError(f"a siren post has no {kind!r} device")


@dataclass
class SirenPhysics(SirenPost):
    """A siren controller with built-in signals and a silent self-test (``siren`` profile)."""

    signals: Mapping[int, SignalSpec] | None = None
    state: str = "idle"  # idle / sounding / testing / fault
    active_signal: str = "none"
    signal: str = "none"  # the signal the next "sound" command plays
    # Momentary: reads back while the siren acts on it, then returns to idle.
    command: str = "idle"
    last_self_test: int = 0
    last_self_test_result: str = "none"
    self_test_reason: str = "ok"
    firmware: str = "SW-SIM-1"
    _test_left_s: float = 0.0
    _play: _Play | None = None
    _loop_open: bool = False  # what the line supervision saw last

    def __post_init__(self) -> None:
        super().__post_init__()
        self.table: dict[int, SignalSpec] = dict(
            builtin_table() if self.signals is None else self.signals
        )
        self.step(0.0)

    @property
    def timeline(self) -> list[tuple[float, float]]:
        now = self.clock()
        current = self._play.sound_until(now) if self._play is not None else []
        return [*self._timeline, *current]

    def _finish(self, at: float) -> None:
        """End the signal being played at time ``at`` (its natural end or earlier)."""
        if self._play is not None:
            self._timeline.extend(self._play.sound_until(at))
            self._play = None

    def _idle(self) -> None:
        self.state = "idle" if self.can_sound else "fault"
        self.active_signal, self.command = "none", "idle"

    def _reason(self) -> str:
        # The most serious cause first: one that keeps the siren silent, then power.
        if self.amplifier_fault:
            return "amplifier"
        if self.driver_fault:
            return "driver_loop"
        if not self.ac_power:
            return "no_ac_power"
        if self.battery_voltage < BATTERY_LOW_V:
            return "battery_low"
        return "ok"

    def _record_test(self) -> None:
        self.last_self_test = int(self.clock())
        self.self_test_reason = self._reason()
        self.last_self_test_result = "pass" if self.self_test_reason == "ok" else "fail"

    def step(self, dt_s: float) -> None:
        now = self.clock()
        if self.state == "sounding" and self._play is not None:
            if not self.can_sound:
                self._finish(now)  # the amplifier or the line died mid-signal: silence
                self._idle()
            elif now >= self._play.end:
                self._finish(self._play.end)
                self._idle()
        elif self.state == "testing":
            self._test_left_s -= dt_s
            if self._test_left_s <= 0:
                self._record_test()
                self._idle()
        elif self.state in ("idle", "fault"):
            self.state = "idle" if self.can_sound else "fault"
        self._step_battery(dt_s)
        # Line supervision: the controller watches the driver loop all the time and reports a
        # break (and its repair) as the result of a self-test, without waiting for one.
        if self.driver_fault != self._loop_open:
            self._loop_open = self.driver_fault
            if self.state != "testing" and (
                self.driver_fault or self.self_test_reason == "driver_loop"
            ):
                self._record_test()

    def values(self, kind: str = "siren") -> dict[str, Value]:
        self._check(kind)
        return {
            "state": self.state,
            "active_signal": self.active_signal,
            "ac_power": self.ac_power,
            "amplifier_fault": self.amplifier_fault,
            "battery_voltage": self.battery_voltage,
            "last_self_test": self.last_self_test,
            "last_self_test_result": self.last_self_test_result,
            "self_test_reason": self.self_test_reason,
            "firmware": self.firmware,
            "command": self.command,
            "signal": self.signal,
        }

    def apply_writes(self, kind: str, writes: Mapping[str, Value]) -> None:
        # One multi-register write may carry command and signal: the signal must land first.
        for name in sorted(writes, key=lambda n: n == "command"):
            self.apply_write(kind, name, writes[name])

    def apply_write(self, kind: str, name: str, value: Value) -> None:
        self._check(kind)
        if name == "signal":
            label = _label(value, tuple(SIGNAL_NUMBERS), "siren signal")
            if label not in (_CONTINUOUS, "none") and SIGNAL_NUMBERS[label] not in self.table:
                raise ValueError(f"this controller holds no signal {label!r}")
            self.signal = label
        elif name == "command":
            self.do(_label(value, ("idle", "sound", "stop", "silent_test"), "siren command"))
        else:
            raise ValueError(f"siren point {name!r} is not writable")

    def do(self, command: str) -> None:
        now = self.clock()
        if command == "sound":
            if self.signal == "none":
                raise ValueError("set the signal register before commanding sound")
            self._finish(now)  # a new sound command restarts the signal
            if not self.can_sound:
                self._idle()  # it cannot sound; the state says why
                return
            if self.signal == _CONTINUOUS:
                intervals = [(0.0, CONTINUOUS_MAX_S)]
            else:
                intervals = on_intervals(self.table[SIGNAL_NUMBERS[self.signal]])
            self._play = _Play(now, intervals)
            self.state, self.active_signal, self.command = "sounding", self.signal, command
        elif command == "stop":
            if self.state == "sounding":
                self._finish(now)
                self._idle()
        elif command == "silent_test" and self.state not in ("sounding", "testing"):
            # Sounding takes precedence: a test requested meanwhile is dropped.
            self.state, self.command, self._test_left_s = "testing", command, SILENT_TEST_S


@dataclass
class SirenRelayPhysics(SirenPost):
    """A siren switched by a relay, with current sensing (``siren_relay`` profile)."""

    relay: bool = False
    current: float = 0.0
    _since: float | None = None  # start of the sound going on now

    def __post_init__(self) -> None:
        super().__post_init__()
        self._noise = 0.0
        self.step(0.0)

    @property
    def sounding(self) -> bool:
        return self._since is not None

    @property
    def timeline(self) -> list[tuple[float, float]]:
        current = [(self._since, self.clock())] if self._since is not None else []
        return [*self._timeline, *current]

    def _settle(self, now: float) -> None:
        """Sound exactly while the relay is on and the driver can make sound."""
        should = self.relay and self.can_sound
        if should and self._since is None:
            self._since = now
        elif not should and self._since is not None:
            self._timeline.append((self._since, now))
            self._since = None

    def step(self, dt_s: float) -> None:
        self._settle(self.clock())
        self._step_battery(dt_s)
        self._noise = self.rng.gauss(0, 0.05)

    def values(self, kind: str = "siren") -> dict[str, Value]:
        self._check(kind)
        # A faulty amplifier or an open line draws (almost) nothing even with the relay on.
        current = SOUND_CURRENT_A + self._noise if self.sounding else 0.02
        return {
            "relay": self.relay,
            "current": max(0.0, current),
            "battery_voltage": self.battery_voltage,
            "ac_power": self.ac_power,
            "loop_ok": not self.driver_fault,
        }

    def apply_writes(self, kind: str, writes: Mapping[str, Value]) -> None:
        for name, value in writes.items():
            self.apply_write(kind, name, value)

    def apply_write(self, kind: str, name: str, value: Value) -> None:
        self._check(kind)
        if name != "relay":
            raise ValueError(f"siren relay point {name!r} is not writable")
        # The sound starts and stops the instant the relay write lands, not at the next tick.
        self.relay = _flag(value, "relay")
        self._settle(self.clock())
