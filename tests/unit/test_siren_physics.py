"""Simulated siren posts: the sound timeline and the silent test's reasons."""

from __future__ import annotations

import pytest

from firmware_sim.sirens import (
    SILENT_TEST_S,
    SOUND_CURRENT_A,
    SirenPhysics,
    SirenRelayPhysics,
)
from shelterwatch.contract import SignalSegment, SignalSpec

DT = 0.1
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def flat(timeline: list[tuple[float, float]]) -> list[float]:
    return [t for pair in timeline for t in pair]


def advance(siren: SirenPhysics | SirenRelayPhysics, clock: Clock, seconds: float) -> None:
    for _ in range(round(seconds / DT)):
        clock.now += DT
        siren.step(DT)


SHORT = SignalSpec(name="air_raid", segments=[SignalSegment(on_s=1, off_s=0.5)], repeat=3, number=2)


def test_a_built_in_signal_sounds_its_real_pattern_from_the_write() -> None:
    clock = Clock()
    siren = SirenPhysics(seed=1, clock=clock, signals={2: SHORT})
    clock.now += 0.03  # between ticks: the sound starts at the write, not at a tick
    siren.apply_writes("siren", {"signal": "air_raid", "command": "sound"})
    advance(siren, clock, 5)
    start = T0 + 0.03
    assert flat(siren.timeline) == pytest.approx(
        flat([(start, start + 1), (start + 1.5, start + 2.5), (start + 3, start + 4)])
    )
    assert siren.values()["state"] == "idle"


def test_the_catalogue_is_the_default_table_and_stop_cuts_the_timeline() -> None:
    clock = Clock()
    siren = SirenPhysics(seed=1, clock=clock)
    siren.apply_writes("siren", {"signal": "disaster", "command": "sound"})
    advance(siren, clock, 20)
    siren.apply_write("siren", "command", "stop")
    assert flat(siren.timeline) == pytest.approx(flat([(T0, T0 + 15)]))
    with pytest.raises(ValueError, match="holds no signal"):
        SirenPhysics(signals={2: SHORT}).apply_write("siren", "signal", "prealert")


def test_continuous_sounds_until_stop() -> None:
    clock = Clock()
    siren = SirenPhysics(seed=1, clock=clock)
    siren.apply_writes("siren", {"signal": "continuous", "command": "sound"})
    advance(siren, clock, 2)
    assert siren.values()["state"] == "sounding"
    siren.apply_write("siren", "command", "stop")
    assert flat(siren.timeline) == pytest.approx(flat([(T0, T0 + 2)]))


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("amplifier_fault", "amplifier"),
        ("driver_fault", "driver_loop"),
        ("no_ac", "no_ac_power"),
        ("battery", "battery_low"),
        (None, "ok"),
    ],
)
def test_the_silent_test_names_its_reason(fault: str | None, reason: str) -> None:
    clock = Clock()
    siren = SirenPhysics(seed=2, clock=clock)
    if fault == "no_ac":
        siren.ac_power = False
    elif fault == "battery":
        siren.battery_fault_v_s, siren.battery_floor_v = 10.0, 22.0
        advance(siren, clock, 1)
    elif fault is not None:
        setattr(siren, fault, True)
        advance(siren, clock, DT)
    siren.apply_write("siren", "command", "silent_test")
    advance(siren, clock, SILENT_TEST_S + DT)
    values = siren.values()
    assert values["self_test_reason"] == reason
    assert values["last_self_test_result"] == ("pass" if reason == "ok" else "fail")
    assert not siren.timeline  # silent


def test_a_driver_fault_is_reported_by_line_supervision_and_stops_the_sound() -> None:
    clock = Clock()
    siren = SirenPhysics(seed=3, clock=clock)
    siren.apply_writes("siren", {"signal": "all_clear", "command": "sound"})
    advance(siren, clock, 1)
    siren.driver_fault = True
    advance(siren, clock, DT)
    values = siren.values()
    assert values["state"] == "fault"
    assert (values["last_self_test_result"], values["self_test_reason"]) == ("fail", "driver_loop")
    assert flat(siren.timeline) == pytest.approx(flat([(T0, T0 + 1 + DT)]))
    siren.driver_fault = False
    advance(siren, clock, DT)
    assert siren.values()["last_self_test_result"] == "pass"
    assert siren.values()["state"] == "idle"


def test_a_relay_siren_sounds_while_the_relay_is_on_and_draws_current() -> None:
    clock = Clock()
    siren = SirenRelayPhysics(seed=4, clock=clock)
    clock.now += 0.01
    siren.apply_write("siren", "relay", True)
    assert siren.values()["current"] == pytest.approx(SOUND_CURRENT_A, abs=0.5)
    advance(siren, clock, 1)
    clock.now += 0.02
    siren.apply_write("siren", "relay", False)
    assert flat(siren.timeline) == pytest.approx(flat([(T0 + 0.01, T0 + 1.03)]))
    assert siren.values()["current"] < 0.1

    siren.amplifier_fault = True
    siren.apply_write("siren", "relay", True)  # the relay clicks; nothing sounds
    advance(siren, clock, 1)
    assert siren.values()["current"] < 0.1
    assert len(siren.timeline) == 1
    siren.driver_fault = True
    assert siren.values()["loop_ok"] is False
