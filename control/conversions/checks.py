"""Telemetry checks and interlocks: pure functions of a site's latest readings.

A check holds, fails, or is unknown: a reading that is missing, marked bad, or older than
``conversions.max_reading_age_s`` neither verifies a step nor contradicts one (a dead sensor
must not pass a step, and must not unverify one either; its own alert covers it).

Interlocks refuse a write before it is sent, with the reason:

- no filtered ventilation (滤毒) while a protective door is open (or its state is unknown):
  filtered air pushed into a shelter that is open to the outside protects nobody;
- the ventilation mode follows 清洁 → 隔绝 → 滤毒 (and back to 清洁 after decontamination, or
  to 隔绝 at any time): clean straight to filtered is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from control.conversions.plans import Check, WriteCommand
from shelterwatch.store import LatestValue

__all__ = ["MODE_NEXT", "Readings", "Verdict", "evaluate", "interlock", "readings_of"]

# Which mode may follow which (the ventilation profile's labels).
MODE_NEXT: dict[str, frozenset[str]] = {
    "clean": frozenset({"isolated"}),
    "isolated": frozenset({"filtered", "clean"}),
    "filtered": frozenset({"isolated", "clean"}),
}
_MODE_ZH = {"clean": "清洁", "isolated": "隔绝", "filtered": "滤毒"}


@dataclass(frozen=True, slots=True)
class Reading:
    value: object
    ts_ms: int
    kind: str


@dataclass(frozen=True, slots=True)
class Readings:
    """A site's latest readings by (device, point), and the time they were read."""

    values: Mapping[tuple[str, str], Reading]
    now_ms: int
    max_age_ms: int

    def fresh(self, device: str, point: str) -> Reading | None:
        reading = self.values.get((device, point))
        if reading is None or self.now_ms - reading.ts_ms > self.max_age_ms:
            return None
        return reading

    def devices_of_kind(self, kind: str) -> list[str]:
        return sorted({d for (d, _p), r in self.values.items() if r.kind == kind})

    def kind_of(self, device: str) -> str:
        return next((r.kind for (d, _p), r in self.values.items() if d == device), "")


def readings_of(latest: Iterable[LatestValue], now_ms: int, max_age_s: float) -> Readings:
    values = {
        (row.device, row.point): Reading(row.value, row.ts_ms, row.kind)
        for row in latest
        if row.kind != "alert"
    }
    return Readings(values, now_ms, int(max_age_s * 1000))


@dataclass(frozen=True, slots=True)
class Verdict:
    holds: bool | None  # None: unknown (missing or stale readings)
    detail: str


def _test(check: Check, value: object) -> bool:
    if check.eq is not None:
        return value == check.eq and type(value) is type(check.eq)  # true is not 1
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if check.ge is not None:
        return value >= check.ge
    return check.le is not None and value <= check.le


def evaluate(checks: Sequence[Check], readings: Readings) -> Verdict:
    """All checks hold (True), one is contradicted by a fresh reading (False), or some
    reading is missing or stale and none is contradicted (None)."""
    unknown: list[str] = []
    seen: list[str] = []
    for check in checks:
        reading = readings.fresh(check.device, check.point)
        if reading is None:
            unknown.append(f"no fresh reading of {check.device}.{check.point}")
            continue
        shown = json.dumps(reading.value, ensure_ascii=False)
        if not _test(check, reading.value):
            return Verdict(
                False, f"{check.device}.{check.point} is {shown}, needs {check.describe()}"
            )
        seen.append(f"{check.device}.{check.point} = {shown}")
    if unknown:
        return Verdict(None, "; ".join(unknown))
    return Verdict(True, "; ".join(seen))


def interlock(command: WriteCommand, readings: Readings) -> str | None:
    """Why the write must not be sent now, or None. Only ventilation mode writes are
    interlocked; a device whose kind is unknown is taken for ventilation when the point is
    ``mode`` (refusing on doubt is the safe side)."""
    if command.point != "mode" or not isinstance(command.value, str):
        return None
    kind = readings.kind_of(command.device)
    if kind not in ("", "ventilation"):
        return None
    target = command.value
    if target == "filtered":
        doors = readings.devices_of_kind("door")
        if not doors:
            return (
                "no protective door reports at this site, so it cannot be shown closed; "
                "filtered ventilation waits until the doors report closed"
            )
        for door in doors:
            closed = readings.fresh(door, "closed")
            if closed is None:
                return f"protective door {door} has no fresh reading; filtered ventilation waits"
            if closed.value is not True:
                return (
                    f"protective door {door} is open; filtered ventilation (滤毒) is refused "
                    "until every protective door is closed"
                )
    current = readings.fresh(command.device, "mode")
    if current is None:
        return f"the ventilation mode of {command.device} is unknown (no fresh reading)"
    now = str(current.value)
    if now == target:
        return None
    allowed = MODE_NEXT.get(now, frozenset())
    if target not in allowed:
        return (
            f"the ventilation of {command.device} is {now} ({_MODE_ZH.get(now, now)}); the mode "
            f"sequence is 清洁 → 隔绝 → 滤毒, so from {now} it may go to "
            f"{', '.join(sorted(allowed)) or 'nothing'}, not {target}"
        )
    return None
