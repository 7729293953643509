"""Evidence from telemetry: pure detectors over one device's sample series. No IO.

Each detector takes the history of the points it reads (oldest first, as
``TimeSeriesStore.history`` returns them) and returns the moments the equipment did what
the programme asks, each with a sentence for the inspector:

- ``door_cycle``: the door's ``position`` went to ``open`` and then back to ``closed`` or
  ``locked`` (done when it closed), or its ``cycle_count`` rose (done at the rise), so a
  gap in the position series does not hide a cycle the controller counted;
- ``fan_run``: ``fan_running`` stayed true for at least ``min_run_s``, from its first true
  sample to the first false one (a run still going at the end of the series counts up to
  its last sample, never beyond what was seen);
- ``generator_start``: ``generator_running`` went from false to true.

Gateways report by exception plus periodic full snapshots, so repeated equal values are
normal and change nothing here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from control.maintenance.programme import Detector, Evidence
from shelterwatch.store import HistoryPoint

__all__ = [
    "DETECTORS",
    "DetectorSpec",
    "Finding",
    "door_cycles",
    "fan_runs",
    "generator_starts",
]


@dataclass(frozen=True, slots=True)
class Finding:
    ts_ms: int
    detail: str


_CLOSED = frozenset({"closed", "locked"})


def _truthy(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return None


def door_cycles(
    position: Sequence[HistoryPoint], cycle_count: Sequence[HistoryPoint] = ()
) -> list[Finding]:
    found: dict[int, Finding] = {}
    opened_ms: int | None = None
    for p in position:
        if p.value == "open":
            opened_ms = p.ts_ms if opened_ms is None else opened_ms
        elif p.value in _CLOSED and opened_ms is not None:
            found[p.ts_ms] = Finding(p.ts_ms, f"opened and {p.value} again")
            opened_ms = None
    previous: float | None = None
    for p in cycle_count:
        if not isinstance(p.value, int | float) or isinstance(p.value, bool):
            continue
        if previous is not None and p.value > previous:
            near = any(abs(ts - p.ts_ms) <= 600_000 for ts in found)
            if not near:  # the same cycle seen by its position and its counter
                found[p.ts_ms] = Finding(p.ts_ms, f"cycle counter {previous:g} → {p.value:g}")
        previous = float(p.value)
    return [found[ts] for ts in sorted(found)]


def fan_runs(running: Sequence[HistoryPoint], min_run_s: float = 3600.0) -> list[Finding]:
    runs: list[Finding] = []
    start: int | None = None
    last_on: int | None = None

    def close(end_ms: int) -> None:
        if start is not None and (end_ms - start) >= min_run_s * 1000:
            hours = (end_ms - start) / 3_600_000
            runs.append(Finding(end_ms, f"fan ran {hours:.1f} h"))

    for p in running:
        on = _truthy(p.value)
        if on is None:
            continue
        if on:
            start = p.ts_ms if start is None else start
            last_on = p.ts_ms
        elif start is not None:
            close(p.ts_ms)
            start = last_on = None
    if start is not None and last_on is not None:
        close(last_on)
    return runs


def generator_starts(running: Sequence[HistoryPoint]) -> list[Finding]:
    starts: list[Finding] = []
    was: bool | None = None
    for p in running:
        on = _truthy(p.value)
        if on is None:
            continue
        if on and was is False:
            starts.append(Finding(p.ts_ms, "generator started"))
        was = on
    return starts


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """Which device kind and points a detector reads, and the function over them."""

    device_kind: str
    points: tuple[str, ...]
    detect: Callable[[Mapping[str, Sequence[HistoryPoint]], Evidence], list[Finding]]


DETECTORS: dict[Detector, DetectorSpec] = {
    "door_cycle": DetectorSpec(
        "door",
        ("position", "cycle_count"),
        lambda s, _e: door_cycles(s.get("position", ()), s.get("cycle_count", ())),
    ),
    "fan_run": DetectorSpec(
        "ventilation",
        ("fan_running",),
        lambda s, e: fan_runs(s.get("fan_running", ()), e.min_run_s),
    ),
    "generator_start": DetectorSpec(
        "power",
        ("generator_running",),
        lambda s, _e: generator_starts(s.get("generator_running", ())),
    ),
}
