"""The two kinds of siren controller, recognised by the point names of the device's profile.

- **Built-in signals** (the ``siren`` profile and any profile with the same points): a
  writable ``command`` enum with ``sound``, ``stop`` and ``silent_test``, a writable ``signal``
  enum, and a ``state`` enum with ``sounding``. Optional: ``active_signal``,
  ``last_self_test``, ``last_self_test_result``, ``self_test_reason``. A signal whose
  ``number`` the ``signal`` enum lists is played by the controller; other signals are timed
  by the gateway with ``signal`` = ``continuous`` and ``sound``/``stop`` per segment.
- **Relay** (the ``siren_relay`` profile): a writable bool ``relay`` and a ``current`` reading
  in A. Optional: ``ac_power``, ``loop_ok``, ``battery_voltage``. The gateway times every
  signal and confirms sound by the current.

Every answer comes from the device's feedback, read back after the write. IO errors come out
as they are (``TransportError``, ``DeviceRefused``); the plays decide what they mean.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.sirens.settings import SirenSettings
from shelterwatch import codec
from shelterwatch.contract import SignalSpec, Value
from shelterwatch.errors import CodecError, TransportError
from shelterwatch.profiles import DataType, Point, Profile, RegisterKind

if TYPE_CHECKING:
    from gateway.commands import Target

__all__ = [
    "BuiltinController",
    "Feedback",
    "RelayController",
    "SirenController",
    "TestResult",
    "controller_for",
]

CONTINUOUS = "continuous"  # the signal a built-in controller sounds until stop


@dataclass(frozen=True, slots=True)
class Feedback:
    ok: bool
    detail: str
    # Loop time at which the device took the write this feedback is about: a controller
    # starts its signal then, not when a later read confirmed it (which a busy link delays).
    since: float | None = None


@dataclass(frozen=True, slots=True)
class TestResult:
    passed: bool
    reason: str  # "ok" when passed
    detail: str


class DeviceIO:
    """Reads and writes points of one device through its link's hub."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.profile = target.profile

    def has(self, name: str) -> bool:
        return any(p.name == name for p in self.profile.points)

    def point(self, name: str) -> Point:
        return self.profile.point(name)

    async def read(self, *names: str) -> dict[str, Value | None]:
        """Read points; those of one table that lie close together in one request."""
        t = self.target
        points = [self.point(n) for n in names]
        out: dict[str, Value | None] = {}
        by_table: dict[RegisterKind, list[Point]] = {}
        for p in points:
            by_table.setdefault(p.table, []).append(p)
        for table, group in by_table.items():
            lo = min(p.address for p in group)
            hi = max(p.address + p.words for p in group)
            spans = [group] if hi - lo <= 32 else [[p] for p in group]
            for span in spans:
                lo = min(p.address for p in span)
                hi = max(p.address + p.words for p in span)
                raw = await t.hub.read(table, t.config.wire_address(lo), hi - lo, t.config.unit_id)
                words = [int(w) for w in raw]
                for p in span:
                    try:
                        out[p.name] = codec.decode(
                            p, words[p.address - lo : p.address - lo + p.words]
                        )
                    except CodecError:
                        out[p.name] = None
        return out

    async def write(self, values: dict[str, Value]) -> None:
        """Write points; neighbouring holding registers go in one request, in address order."""
        t = self.target
        points = sorted((self.point(n) for n in values), key=lambda p: (p.table, p.address))
        holding = [p for p in points if p.table is RegisterKind.HOLDING]
        contiguous = all(a.address + a.words == b.address for a, b in itertools.pairwise(holding))
        if len(holding) > 1 and contiguous:
            words = [w for p in holding for w in codec.encode(p, values[p.name])]
            await t.hub.write_registers(
                t.config.wire_address(holding[0].address), words, t.config.unit_id
            )
            points = [p for p in points if p.table is not RegisterKind.HOLDING]
        for p in points:
            words = codec.encode(p, values[p.name])
            address = t.config.wire_address(p.address)
            if p.table is RegisterKind.COIL:
                await t.hub.write_coil(address, bool(words[0]), t.config.unit_id)
            elif len(words) == 1:
                await t.hub.write_register(address, words[0], t.config.unit_id)
            else:
                await t.hub.write_registers(address, words, t.config.unit_id)


async def confirm(
    io: DeviceIO,
    names: tuple[str, ...],
    accept: Callable[[dict[str, Value | None]], bool],
    settings: SirenSettings,
    timeout_s: float | None = None,
) -> tuple[bool, dict[str, Value | None]]:
    """Read ``names`` every confirm_poll_s until ``accept`` says yes or the time is up.

    Transport errors are retried until the deadline; if no read succeeded at all, the last
    one is raised (the caller reports the siren unreachable).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (timeout_s if timeout_s is not None else settings.confirm_timeout_s)
    last: dict[str, Value | None] = {}
    error: TransportError | None = None
    while True:
        try:
            last = await io.read(*names)
            error = None
            if accept(last):
                return True, last
        except TransportError as exc:
            error = exc
        if loop.time() >= deadline:
            if error is not None and not last:
                raise error
            return False, last
        await asyncio.sleep(settings.confirm_poll_s)


def _reads(values: dict[str, Value | None]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items())


class SirenController:
    """What the plays need from a controller."""

    kind = "?"
    evidence = "?"

    def __init__(self, io: DeviceIO, settings: SirenSettings) -> None:
        self.io = io
        self.settings = settings

    @property
    def where(self) -> str:
        t = self.io.target
        return f"unit {t.config.unit_id} at {t.hub.name}"

    def builtin_label(self, signal: SignalSpec) -> str | None:
        """The controller's own name for the signal when it plays it itself, else None."""
        return None

    async def play_builtin(self, label: str) -> Feedback:
        raise NotImplementedError

    async def playing(self) -> tuple[str, Feedback]:
        """For a controller-timed signal: its state now, and whether that is still fine."""
        raise NotImplementedError

    async def sound_on(self) -> Feedback:
        raise NotImplementedError

    async def sound_off(self) -> Feedback:
        raise NotImplementedError

    async def stop(self) -> Feedback:
        return await self.sound_off()

    async def silent_test(self, started: Callable[[str], None]) -> TestResult:
        raise NotImplementedError


class BuiltinController(SirenController):
    kind = "controller"
    evidence = "the state register"

    def _feedback_names(self) -> tuple[str, ...]:
        return ("state", "active_signal") if self.io.has("active_signal") else ("state",)

    def builtin_label(self, signal: SignalSpec) -> str | None:
        enum = self.io.point("signal").enum or {}
        if signal.number is None:
            return None
        label = enum.get(signal.number)
        return label if label not in (None, "none", CONTINUOUS) else None

    async def _sound(self, label: str) -> Feedback:
        await self.io.write({"command": "sound", "signal": label})
        written = asyncio.get_running_loop().time()

        def sounding(v: dict[str, Value | None]) -> bool:
            return v.get("state") == "sounding" and v.get("active_signal", label) == label

        ok, got = await confirm(self.io, self._feedback_names(), sounding, self.settings)
        return Feedback(ok, _reads(got), since=written)

    async def play_builtin(self, label: str) -> Feedback:
        return await self._sound(label)

    async def playing(self) -> tuple[str, Feedback]:
        got = await self.io.read(*self._feedback_names())
        state = str(got.get("state"))
        return state, Feedback(state == "sounding", _reads(got))

    async def sound_on(self) -> Feedback:
        return await self._sound(CONTINUOUS)

    async def sound_off(self) -> Feedback:
        await self.io.write({"command": "stop"})
        ok, got = await confirm(
            self.io, ("state",), lambda v: v.get("state") != "sounding", self.settings
        )
        return Feedback(ok, _reads(got))

    async def silent_test(self, started: Callable[[str], None]) -> TestResult:
        names = tuple(
            n
            for n in ("state", "last_self_test", "last_self_test_result", "self_test_reason")
            if self.io.has(n)
        )
        before = await self.io.read(*names)
        floor = int(time.time()) - 1  # the controller stamps the test in whole seconds
        await self.io.write({"command": "silent_test"})

        def fresh(v: dict[str, Value | None]) -> bool:
            stamp = v.get("last_self_test")
            renewed = (
                isinstance(stamp, int) and stamp >= floor and stamp != before.get("last_self_test")
            )
            return v.get("state") == "testing" or renewed

        ok, got = await confirm(self.io, names, fresh, self.settings)
        if not ok:
            return TestResult(
                False, "not_started", f"the controller did not start the self-test ({_reads(got)})"
            )
        started(f"state {got.get('state')}")
        ok, got = await confirm(
            self.io,
            names,
            lambda v: v.get("state") != "testing",
            self.settings,
            timeout_s=self.settings.silent_test_timeout_s,
        )
        if not ok:
            return TestResult(
                False,
                "timeout",
                f"the self-test did not finish within {self.settings.silent_test_timeout_s:g} s",
            )
        result = got.get("last_self_test_result")
        reason = str(got.get("self_test_reason", "ok" if result == "pass" else "unknown"))
        if result == "pass":
            return TestResult(
                True,
                "ok",
                "the controller's self-test passed (amplifier, driver loop, power, battery)",
            )
        return TestResult(
            False, reason, f"{reason}: the controller's self-test failed ({_reads(got)})"
        )


class RelayController(SirenController):
    kind = "relay"
    evidence = "the current draw"

    async def sound_on(self) -> Feedback:
        await self.io.write({"relay": True})
        need = self.settings.relay_sound_current_a

        def drawing(v: dict[str, Value | None]) -> bool:
            current = v.get("current")
            return isinstance(current, int | float) and current >= need

        ok, got = await confirm(self.io, ("current",), drawing, self.settings)
        detail = f"current {got.get('current')} A" + ("" if ok else f", below {need:g} A")
        return Feedback(ok, detail)

    async def sound_off(self) -> Feedback:
        await self.io.write({"relay": False})
        idle = self.settings.relay_idle_current_a

        def quiet(v: dict[str, Value | None]) -> bool:
            current = v.get("current")
            return v.get("relay") is False and isinstance(current, int | float) and current <= idle

        ok, got = await confirm(self.io, ("relay", "current"), quiet, self.settings)
        return Feedback(ok, _reads(got))

    async def silent_test(self, started: Callable[[str], None]) -> TestResult:
        names = tuple(
            n
            for n in ("relay", "current", "ac_power", "loop_ok", "battery_voltage")
            if self.io.has(n)
        )
        got = await self.io.read(*names)
        started("relay post answered")
        s = self.settings
        checks: list[tuple[str, bool, str]] = [
            ("no_ac_power", got.get("ac_power", True) is not False, "mains (AC) power is off"),
            ("driver_loop", got.get("loop_ok", True) is not False, "the driver loop is open"),
        ]
        battery = got.get("battery_voltage")
        if isinstance(battery, int | float):
            checks.append(
                (
                    "battery_low",
                    battery >= s.battery_min_v,
                    f"battery {battery:.1f} V, below {s.battery_min_v:g} V",
                )
            )
        current = got.get("current")
        if got.get("relay") is False and isinstance(current, int | float):
            checks.append(
                (
                    "idle_current",
                    current <= s.relay_idle_current_a,
                    f"{current:.2f} A flows with the relay off",
                )
            )
        checked = "reachability, " + ", ".join(c[0].replace("no_", "") for c in checks)
        limits = f"checked {checked}; a relay post cannot test its amplifier without sound"
        for reason, fine, why in checks:
            if not fine:
                return TestResult(False, reason, f"{reason}: {why} ({limits})")
        return TestResult(True, "ok", f"relay post passed ({_reads(got)}); {limits}")


def controller_for(target: Target, settings: SirenSettings) -> SirenController | str:
    """The controller for a device, or why the device is not a siren this gateway can drive."""
    io = DeviceIO(target)
    profile: Profile = target.profile

    def enum_has(name: str, *labels: str) -> bool:
        if not io.has(name):
            return False
        values = set((io.point(name).enum or {}).values())
        return all(label in values for label in labels)

    if (
        enum_has("command", "sound", "stop", "silent_test")
        and io.point("command").writable
        and io.has("signal")
        and io.point("signal").writable
        and enum_has("state", "sounding")
    ):
        return BuiltinController(io, settings)
    if (
        io.has("relay")
        and io.point("relay").writable
        and io.point("relay").type is DataType.BOOL
        and io.has("current")
    ):
        return RelayController(io, settings)
    return (
        f"device profile {profile.name!r} is not a siren controller: it has neither "
        "command/signal/state (built-in signals) nor relay/current (relay siren) points"
    )
