"""The alert engine's evaluation rate against a bare loop over the same samples, in one run.

Synthetic telemetry for many sites (a ventilation controller, two doors, environment, power,
water and a siren each, with the built-in profiles' points) is fed to the engine with the
default rule pack, one simulated second at a time with a tick after each. Some sites misbehave
(low overpressure, a failed siren self-test, a stuck gauge) so that rules raise and clear.
The limit is a loop that only iterates the same samples and their points.

A point is one value. The goal: the engine keeps up with the telemetry path's ingest goal of
50,000 points/s on one core.

Usage: .venv/bin/python bench/alerts.py [--sites N] [--seconds S]
The last line printed is JSON with every figure and "ratio".
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.alerts import AlertEngine, load_rules
from shelterwatch.store import FieldValue, Sample

T0 = 1_758_160_000_000
GOAL = 50_000


def make_samples(sites: int, seconds: int, seed: int = 1) -> list[list[Sample]]:
    """Per simulated second, the samples of every site (full snapshots, as a worst case)."""
    rng = random.Random(seed)
    out: list[list[Sample]] = []
    for sec in range(seconds):
        ts = T0 + sec * 1000
        tick: list[Sample] = []
        for i in range(sites):
            site = f"site-{i:04d}"
            gw = f"gw-{i:04d}"
            bad = i % 10 == 0  # one site in ten misbehaves
            mode = "filtered" if i % 2 == 0 else "clean"
            pressure = (12.0 if bad and sec > 20 else 40.0) + rng.gauss(0, 0.3)

            def add(kind: str, dev: str, fields: dict[str, FieldValue]) -> None:
                tick.append(Sample(kind, site, gw, dev, ts, fields))  # noqa: B023

            add(
                "ventilation",
                "vent",
                {
                    "mode": mode,
                    "fan_running": True,
                    "fan_current": 7.0 + rng.gauss(0, 0.05),
                    "airflow": 900.0 + rng.gauss(0, 5),
                    "filter_dp": 180.0 + rng.gauss(0, 0.5),
                    "overpressure": pressure,
                    "fan_fault": False,
                    "filter_alarm": False,
                    "fan_hours": 1000.0 + sec / 3600,
                },
            )
            for door in ("door-a", "door-b"):
                add(
                    "door",
                    door,
                    {
                        "position": "closed",
                        "closed": True,
                        "locked": False,
                        "seal_pressure": 50.0 + rng.gauss(0, 0.1),
                        "motor_current": 0.0,
                        "cycle_count": 12,
                        "command": "idle",
                    },
                )
            add(
                "environment",
                "env",
                {
                    "co2": 0.04 + rng.gauss(0, 0.001),
                    "o2": 20.9,
                    "temperature": 21.0,
                    "humidity": 65.0 + rng.gauss(0, 0.5),
                },
            )
            add(
                "power",
                "pwr",
                {
                    "mains_present": True,
                    "generator_running": False,
                    "generator_start": False,
                    "battery_voltage": 26.8,
                    "battery_room_temperature": 20.0 + rng.gauss(0, 0.1),
                },
            )
            add(
                "water",
                "tank",
                {
                    "tank_level": 80.0 - sec * 0.01,
                    "inlet_pressure": 0.3,
                    "pump_running": False,
                    "low_level": False,
                },
            )
            add(
                "siren",
                "siren",
                {
                    "state": "idle",
                    "active_signal": "none",
                    "ac_power": True,
                    "amplifier_fault": False,
                    "battery_voltage": 26.8,
                    "last_self_test": 1758000000,
                    "last_self_test_result": "fail" if bad and sec % 60 > 30 else "pass",
                    "firmware": "1.2.3",
                    "command": "idle",
                    "signal": "none",
                },
            )
        out.append(tick)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=120)
    args = parser.parse_args()
    ticks = make_samples(args.sites, args.seconds)
    points = sum(len(s.fields) for tick in ticks for s in tick)
    samples = sum(len(tick) for tick in ticks)

    # The limit: only iterate the samples and their points.
    start = time.perf_counter()
    seen = 0
    for tick in ticks:
        for s in tick:
            for _name, _value in s.fields.items():
                seen += 1
    bare_s = time.perf_counter() - start
    assert seen == points

    pack = load_rules()
    engine = AlertEngine(pack, postures={"site-0000": "wartime"}, repeat_critical_s=60)
    events = 0
    start = time.perf_counter()
    for n, tick in enumerate(ticks):
        for s in tick:
            engine.on_sample(s)
        engine.tick(T0 + (n + 1) * 1000)
        events += len(engine.events())
        engine.take_changes()  # what the collector persists once per batch
    engine_s = time.perf_counter() - start

    engine_rate = points / engine_s
    bare_rate = points / bare_s
    result = {
        "sites": args.sites,
        "seconds": args.seconds,
        "rules": len(pack.rules),
        "samples": samples,
        "points": points,
        "events": events,
        "active_alerts": len(engine.active()),
        "bare_points_per_s": round(bare_rate),
        "engine_points_per_s": round(engine_rate),
        "engine_samples_per_s": round(samples / engine_s),
        "goal_points_per_s": GOAL,
        "meets_goal": engine_rate >= GOAL,
        "ratio": round(engine_rate / bare_rate, 4),
    }
    print(
        f"{points:,} points in {samples:,} samples from {args.sites} sites: engine "
        f"{engine_rate:,.0f} points/s, bare loop {bare_rate:,.0f} points/s, "
        f"{events} alert events"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
