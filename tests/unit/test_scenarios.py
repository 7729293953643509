"""Fault scenarios on the simulated physics, stepped by hand (no servers are started).

Each test runs a faulted fleet next to a twin with the same seed and the same writes. The
scenarios do not change how the physics draws its noise, so every register the fault should
not touch must read exactly what the twin's does.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

# Submodules, not the package: a stale editable install can leave firmware_sim a namespace.
from firmware_sim.fleet import Fleet, FleetSpec
from firmware_sim.physics import DOOR_TRAVEL_S, SEAL_KPA
from firmware_sim.scenarios import SCENARIOS, ScenarioError
from shelterwatch.contract import Value

DT = 0.5
SHELTER, SIREN = "shelter-01", "siren-01"


def make() -> Fleet:
    return Fleet(FleetSpec(shelters=1, sirens=1, seed=3))


def run(seconds: float, *fleets: Fleet) -> None:
    for _ in range(round(seconds / DT)):
        for fleet in fleets:
            fleet.step(DT)


def num(fleet: Fleet, site: str, device: str, point: str) -> float:
    value = fleet.value(site, device, point)
    assert isinstance(value, int | float) and not isinstance(value, bool), (point, value)
    return float(value)


def readings(fleet: Fleet) -> dict[tuple[str, str, str], Value]:
    return {
        (d.site, d.device_id, p.name): d.value(p.name)
        for d in fleet.devices
        for p in d.profile.points
    }


def assert_only_changed(fleet: Fleet, twin: Fleet, allowed: set[tuple[str, str]]) -> None:
    """Every register not in ``allowed`` ((device, point), any site) reads as in the twin."""
    mine, theirs = readings(fleet), readings(twin)
    differ = {key for key in mine if mine[key] != theirs[key]}
    unexpected = {key for key in differ if key[1:] not in allowed}
    assert not unexpected, {key: (mine[key], theirs[key]) for key in unexpected}


def both(action: Callable[[Fleet], None], *fleets: Fleet) -> None:
    for fleet in fleets:
        action(fleet)


def close_door_filtered(fleet: Fleet) -> None:
    shelter = fleet.shelters[SHELTER]
    shelter.apply_write("door", "command", "close")
    shelter.apply_write("ventilation", "mode", "filtered")


# ---------------------------------------------------------------------------- the table


def test_the_issue_s_scenarios_are_all_there() -> None:
    assert set(SCENARIOS) == {
        "seal_leak",
        "door_jam",
        "filter_clogging",
        "fan_failure",
        "stuck_sensor",
        "comm_loss",
        "water_leak",
        "rising_humidity",
        "siren_battery_decay",
        "siren_amplifier_fault",
        "siren_driver_fault",
        "power_loss",
    }
    for scenario in SCENARIOS.values():
        assert scenario.effect and scenario.repair and scenario.kinds


async def test_fault_requests_that_cannot_be_carried_out() -> None:
    fleet = make()
    with pytest.raises(ScenarioError, match="no simulated site 'shelter-09'"):
        await fleet.fault("shelter-09", "seal_leak")
    with pytest.raises(ScenarioError, match="no fault scenario 'flood'"):
        await fleet.fault(SHELTER, "flood")
    with pytest.raises(ScenarioError, match="not a fault of a siren"):
        await fleet.fault(SIREN, "seal_leak")
    with pytest.raises(ScenarioError, match="not a fault of a shelter"):
        await fleet.fault(SHELTER, "siren_battery_decay")
    with pytest.raises(ScenarioError, match="no option 'speed'"):
        await fleet.fault(SHELTER, "seal_leak", speed=1.0)
    for bad in (-1.0, 0.0, "fast", float("nan"), True):
        with pytest.raises(ScenarioError, match="must be a number > 0"):
            await fleet.fault(SHELTER, "seal_leak", rate_kpa_s=bad)
    with pytest.raises(ScenarioError, match="true or false"):
        await fleet.fault(SHELTER, "filter_clogging", filtered="maybe")
    with pytest.raises(ScenarioError, match="is not active"):
        await fleet.repair(SHELTER, "seal_leak")
    assert fleet.faults == []


async def test_active_faults_are_listed_refused_twice_and_options_parsed() -> None:
    fleet = make()
    seal = await fleet.fault(SHELTER, "seal_leak", rate_kpa_s="0.25")  # as from a command line
    assert seal.options == {"rate_kpa_s": 0.25}
    await fleet.fault(SIREN, "siren_amplifier_fault")
    assert [(f.site, f.scenario) for f in fleet.faults] == [
        (SHELTER, "seal_leak"),
        (SIREN, "siren_amplifier_fault"),
    ]
    assert fleet.faults[0].as_dict()["options"] == {"rate_kpa_s": 0.25}
    with pytest.raises(ScenarioError, match="already active"):
        await fleet.fault(SHELTER, "seal_leak")
    await fleet.repair(SHELTER, "seal_leak")
    assert [f.scenario for f in fleet.faults] == ["siren_amplifier_fault"]
    await fleet.fault(SHELTER, "seal_leak")  # once repaired it may break again
    assert fleet.faults[-1].options == {"rate_kpa_s": 1.0}


# ---------------------------------------------------------------------------- shelters


async def test_seal_leak_deflates_the_seal_and_loses_the_overpressure() -> None:
    fleet, twin = make(), make()
    both(close_door_filtered, fleet, twin)
    run(DOOR_TRAVEL_S + 30, fleet, twin)
    assert num(fleet, SHELTER, "door", "seal_pressure") == pytest.approx(SEAL_KPA, abs=1)
    assert 30 <= num(fleet, SHELTER, "vent", "overpressure") <= 50

    await fleet.fault(SHELTER, "seal_leak")  # 1 kPa/s
    run(10, fleet, twin)
    assert num(fleet, SHELTER, "door", "seal_pressure") == pytest.approx(40, abs=1)
    run(20, fleet, twin)
    assert num(fleet, SHELTER, "door", "seal_pressure") == pytest.approx(20, abs=1)
    assert num(fleet, SHELTER, "vent", "overpressure") < 30
    assert fleet.value(SHELTER, "door", "position") == "closed"
    assert_only_changed(fleet, twin, {("door", "seal_pressure"), ("vent", "overpressure")})

    await fleet.repair(SHELTER, "seal_leak")
    run(30, fleet, twin)
    assert num(fleet, SHELTER, "door", "seal_pressure") == pytest.approx(SEAL_KPA, abs=1)
    assert num(fleet, SHELTER, "vent", "overpressure") == pytest.approx(
        num(twin, SHELTER, "vent", "overpressure"), abs=1
    )


async def test_seal_leak_changes_nothing_while_the_door_is_open() -> None:
    fleet, twin = make(), make()
    await fleet.fault(SHELTER, "seal_leak")
    run(30, fleet, twin)
    assert_only_changed(fleet, twin, set())


async def test_filter_clogging_doubles_the_filter_dp_within_a_minute() -> None:
    fleet, twin = make(), make()
    run(5, fleet, twin)
    assert fleet.value(SHELTER, "vent", "mode") == "clean"
    start = fleet.shelters[SHELTER].vent.filter_resistance

    await fleet.fault(SHELTER, "filter_clogging")  # 3 Pa/s, switches to filtered
    assert fleet.shelters[SHELTER].vent.mode == "filtered"
    run(DT, fleet)  # one step for the new mode's filter_dp to show
    first = num(fleet, SHELTER, "vent", "filter_dp")
    assert first == pytest.approx(start, abs=5)
    run(30, fleet)
    half = num(fleet, SHELTER, "vent", "filter_dp")
    assert half == pytest.approx(start + 90, abs=5)
    run(30, fleet)
    assert num(fleet, SHELTER, "vent", "filter_dp") >= 2 * start - 10

    await fleet.repair(SHELTER, "filter_clogging")
    run(DT, fleet)
    assert fleet.shelters[SHELTER].vent.filter_resistance == start
    assert fleet.value(SHELTER, "vent", "mode") == "clean"  # as it was before the fault
    assert fleet.value(SHELTER, "vent", "filter_dp") == 0.0


async def test_filter_clogging_without_switching_the_mode() -> None:
    fleet, twin = make(), make()
    await fleet.fault(SHELTER, "filter_clogging", filtered="false")
    run(30, fleet, twin)
    assert fleet.value(SHELTER, "vent", "mode") == "clean"
    assert_only_changed(fleet, twin, set())  # no air through the absorber: nothing to see

    both(lambda f: f.shelters[SHELTER].apply_write("ventilation", "mode", "filtered"), fleet, twin)
    run(20, fleet, twin)
    gap = num(fleet, SHELTER, "vent", "filter_dp") - num(twin, SHELTER, "vent", "filter_dp")
    assert gap == pytest.approx(60, abs=3)


async def test_fan_failure_stops_the_air_and_the_overpressure() -> None:
    fleet, twin = make(), make()
    both(close_door_filtered, fleet, twin)
    run(DOOR_TRAVEL_S + 30, fleet, twin)

    await fleet.fault(SHELTER, "fan_failure")
    run(30, fleet, twin)
    assert fleet.value(SHELTER, "vent", "fan_fault") is True
    assert fleet.value(SHELTER, "vent", "fan_running") is True  # commanded on, but failed
    assert fleet.value(SHELTER, "vent", "fan_current") == 0.0
    assert fleet.value(SHELTER, "vent", "airflow") == 0.0
    assert fleet.value(SHELTER, "vent", "filter_dp") == 0.0
    assert num(fleet, SHELTER, "vent", "overpressure") < 5
    # No twin comparison here: a stopped fan draws no noise for its current and airflow, so
    # every later reading of the shelter takes other random numbers.
    assert fleet.value(SHELTER, "door", "position") == "closed"
    assert fleet.value(SHELTER, "vent", "mode") == "filtered"

    await fleet.repair(SHELTER, "fan_failure")
    run(30, fleet, twin)
    assert fleet.value(SHELTER, "vent", "fan_fault") is False
    assert num(fleet, SHELTER, "vent", "fan_current") == pytest.approx(7, abs=0.5)
    assert 30 <= num(fleet, SHELTER, "vent", "overpressure") <= 50


async def test_water_leak_drains_the_tank_below_the_reserve() -> None:
    fleet, twin = make(), make()
    start = num(fleet, SHELTER, "water", "tank_level")
    await fleet.fault(SHELTER, "water_leak")  # 2 %/s
    run(10, fleet, twin)
    assert num(fleet, SHELTER, "water", "tank_level") == pytest.approx(start - 20, abs=0.5)
    run(50, fleet, twin)
    assert num(fleet, SHELTER, "water", "tank_level") < 20
    assert fleet.value(SHELTER, "water", "low_level") is True
    assert fleet.value(SHELTER, "water", "pump_running") is True  # running, and losing
    water = {"tank_level", "low_level", "pump_running", "inlet_pressure"}
    assert_only_changed(fleet, twin, {("water", p) for p in water})

    await fleet.repair(SHELTER, "water_leak")
    low = num(fleet, SHELTER, "water", "tank_level")
    run(60, fleet, twin)
    assert num(fleet, SHELTER, "water", "tank_level") == pytest.approx(low + 60 * 0.045, abs=0.5)


async def test_rising_humidity_passes_75_and_dries_back_after_repair() -> None:
    fleet, twin = make(), make()
    before = num(fleet, SHELTER, "env", "humidity")
    assert before < 75
    await fleet.fault(SHELTER, "rising_humidity")  # toward 85 %RH at 0.5 %RH/s
    run(60, fleet, twin)
    assert num(fleet, SHELTER, "env", "humidity") > 75
    run(30, fleet, twin)
    assert num(fleet, SHELTER, "env", "humidity") == pytest.approx(85, abs=1.5)
    assert_only_changed(fleet, twin, {("env", "humidity")})

    await fleet.repair(SHELTER, "rising_humidity")
    run(90, fleet, twin)
    assert num(fleet, SHELTER, "env", "humidity") == pytest.approx(before, abs=1.5)
    assert fleet.shelters[SHELTER].env.humidity_setpoint is None  # wanders freely again


# ---------------------------------------------------------------------------- siren posts


async def test_siren_battery_decay_falls_to_its_floor_and_a_new_battery_is_full() -> None:
    fleet, twin = make(), make()
    await fleet.fault(SIREN, "siren_battery_decay")  # 0.2 V/s down to 22 V
    run(10, fleet, twin)
    assert num(fleet, SIREN, "siren", "battery_voltage") == pytest.approx(25.2, abs=0.1)
    run(30, fleet, twin)
    assert num(fleet, SIREN, "siren", "battery_voltage") == pytest.approx(22, abs=0.1)
    assert fleet.value(SIREN, "siren", "ac_power") is True
    assert_only_changed(fleet, twin, {("siren", "battery_voltage")})

    await fleet.repair(SIREN, "siren_battery_decay")
    run(DT, fleet, twin)
    assert_only_changed(fleet, twin, set())


async def test_siren_amplifier_fault_fails_the_self_test_and_silences_the_siren() -> None:
    fleet = make()
    siren = fleet.sirens[SIREN]
    siren.apply_writes("siren", {"signal": "air_raid", "command": "sound"})
    run(5, fleet)
    assert fleet.value(SIREN, "siren", "state") == "sounding"

    await fleet.fault(SIREN, "siren_amplifier_fault")
    run(DT, fleet)
    assert fleet.value(SIREN, "siren", "amplifier_fault") is True
    assert fleet.value(SIREN, "siren", "state") == "fault"
    assert fleet.value(SIREN, "siren", "active_signal") == "none"
    siren.apply_write("siren", "command", "silent_test")
    run(5, fleet)
    assert fleet.value(SIREN, "siren", "last_self_test_result") == "fail"

    await fleet.repair(SIREN, "siren_amplifier_fault")
    run(DT, fleet)
    assert fleet.value(SIREN, "siren", "state") == "idle"
    siren.apply_write("siren", "command", "silent_test")
    run(5, fleet)
    assert fleet.value(SIREN, "siren", "last_self_test_result") == "pass"


# ---------------------------------------------------------------------------- any site


async def test_stuck_sensor_flatlines_co2_until_repaired() -> None:
    fleet, twin = make(), make()
    stuck = fleet.value(SHELTER, "env", "co2")
    await fleet.fault(SHELTER, "stuck_sensor")  # env co2 on a shelter
    seen: set[Value] = set()
    for _ in range(60):
        run(DT, fleet, twin)
        assert fleet.value(SHELTER, "env", "co2") == stuck
        seen.add(twin.value(SHELTER, "env", "co2"))
    assert len(seen) > 1  # the healthy sensor's noise moves it
    assert_only_changed(fleet, twin, {("env", "co2")})

    await fleet.repair(SHELTER, "stuck_sensor")
    assert_only_changed(fleet, twin, set())


async def test_stuck_sensor_on_another_point_and_on_a_siren() -> None:
    fleet, twin = make(), make()
    humidity = fleet.value(SHELTER, "env", "humidity")
    battery = fleet.value(SIREN, "siren", "battery_voltage")
    await fleet.fault(SHELTER, "stuck_sensor", device="env", point="humidity")
    await fleet.fault(SIREN, "stuck_sensor")  # battery_voltage on a siren post
    run(30, fleet, twin)
    assert fleet.value(SHELTER, "env", "humidity") == humidity
    assert fleet.value(SIREN, "siren", "battery_voltage") == battery
    assert_only_changed(fleet, twin, {("env", "humidity"), ("siren", "battery_voltage")})


async def test_stuck_sensor_refuses_what_is_not_a_sensor_reading() -> None:
    fleet = make()
    with pytest.raises(ScenarioError, match="no point 'co3'"):
        await fleet.fault(SHELTER, "stuck_sensor", point="co3")
    with pytest.raises(ScenarioError, match="no device 'pump'"):
        await fleet.fault(SHELTER, "stuck_sensor", device="pump", point="co2")
    with pytest.raises(ScenarioError, match="a setting"):
        await fleet.fault(SHELTER, "stuck_sensor", device="vent", point="mode")
    assert fleet.faults == []


async def test_comm_loss_on_a_fleet_that_is_not_serving_starts_nothing() -> None:
    fleet = make()
    with pytest.raises(ScenarioError, match="no device 'radio'"):
        await fleet.fault(SHELTER, "comm_loss", device="radio")
    await fleet.fault(SHELTER, "comm_loss")
    await fleet.repair(SHELTER, "comm_loss")
    assert not any(d.running for d in fleet.devices)


async def test_a_jammed_door_does_not_move_and_moves_again_once_repaired() -> None:
    fleet, twin = make(), make()
    await fleet.fault(SHELTER, "door_jam")
    both(lambda f: f.shelters[SHELTER].apply_write("door", "command", "close"), fleet, twin)
    run(DOOR_TRAVEL_S + 1, fleet, twin)
    assert fleet.value(SHELTER, "door", "position") == "open"
    assert twin.value(SHELTER, "door", "position") == "closed"
    # The motor is held against the leaf while the command stands.
    assert num(fleet, SHELTER, "door", "motor_current") > 8
    await fleet.repair(SHELTER, "door_jam")
    run(DT, fleet)
    assert fleet.value(SHELTER, "door", "command") == "idle"
    fleet.shelters[SHELTER].apply_write("door", "command", "close")
    run(DOOR_TRAVEL_S + 1, fleet)
    assert fleet.value(SHELTER, "door", "position") == "closed"


async def test_power_loss_cuts_the_mains_of_a_shelter_and_of_a_siren_post() -> None:
    fleet, twin = make(), make()
    await fleet.fault(SHELTER, "power_loss")
    await fleet.fault(SIREN, "power_loss")
    run(2, fleet, twin)
    assert fleet.value(SHELTER, "power", "mains_present") is False
    assert fleet.value(SIREN, "siren", "ac_power") is False
    assert twin.value(SIREN, "siren", "ac_power") is True
    await fleet.repair(SHELTER, "power_loss")
    await fleet.repair(SIREN, "power_loss")
    run(DT, fleet)
    assert fleet.value(SHELTER, "power", "mains_present") is True
    assert fleet.value(SIREN, "siren", "ac_power") is True
