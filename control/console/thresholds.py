"""Limits drawn on the site view's charts: the default alert rule pack's figures.

The collector's rules (collector/alerts/default_rules.yaml) decide the alerts; the control
service cannot read them (it never imports the collector), so the console keeps the same
figures here as lines to look at, not as rules. Grafana's shelter dashboard draws the same
lines (docs/dashboards.md). Each label is a catalogue key.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Threshold", "thresholds_for"]


@dataclass(frozen=True, slots=True)
class Threshold:
    value: float
    # A catalogue key: what crossing the line means.
    label: str


# (device kind, point) → lines. The sources are cited in the rule pack.
_LINES: dict[tuple[str, str], tuple[Threshold, ...]] = {
    ("ventilation", "overpressure"): (
        Threshold(30, "limit.overpressure_min"),
        Threshold(50, "limit.overpressure_max"),
    ),
    ("environment", "co2"): (
        Threshold(2.5, "limit.co2_switch"),
        Threshold(4.0, "limit.co2_danger"),
    ),
    ("environment", "humidity"): (Threshold(75, "limit.humidity_max"),),
    ("water", "tank_level"): (
        Threshold(30, "limit.water_reserve"),
        Threshold(95, "limit.water_full"),
    ),
    ("power", "battery_room_temperature"): (
        Threshold(15, "limit.battery_room_min"),
        Threshold(25, "limit.battery_room_max"),
    ),
    ("siren", "battery_voltage"): (Threshold(24, "limit.siren_battery_min"),),
    ("door", "seal_pressure"): (Threshold(40, "limit.door_seal_min"),),
}


def thresholds_for(kind: str, point: str) -> tuple[Threshold, ...]:
    return _LINES.get((kind, point), ())


def all_labels() -> set[str]:
    """Every label key (the catalogue test checks each one exists)."""
    return {line.label for lines in _LINES.values() for line in lines}
