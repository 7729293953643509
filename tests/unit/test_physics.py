"""Simulated physics and the register image, without any server."""

from __future__ import annotations

import pytest

# Submodules, not the package: a stale editable install can leave firmware_sim a namespace.
from firmware_sim.physics import DOOR_TRAVEL_S, ShelterPhysics
from firmware_sim.registers import NotWritable, RegisterImage
from firmware_sim.sirens import SILENT_TEST_S, SirenPhysics
from shelterwatch import codec
from shelterwatch.errors import CodecError
from shelterwatch.profiles import RegisterKind, load_profile

DT = 0.5

SHELTER_PROFILES = {
    "door": "blast_door",
    "ventilation": "ventilation",
    "environment": "environment",
    "water": "water",
    "power": "power",
}


def run(physics: ShelterPhysics | SirenPhysics, seconds: float, dt: float = DT) -> None:
    for _ in range(round(seconds / dt)):
        physics.step(dt)


def close_door(shelter: ShelterPhysics) -> None:
    shelter.apply_write("door", "command", "close")
    run(shelter, DOOR_TRAVEL_S + 1)
    assert shelter.values("door")["position"] == "closed"


# ---------------------------------------------------------------------------- blast door


def test_door_closes_after_travel_and_counts_a_cycle() -> None:
    shelter = ShelterPhysics(seed=1)
    before = shelter.values("door")
    assert before["position"] == "open"
    assert before["seal_pressure"] == pytest.approx(0, abs=0.5)

    shelter.apply_write("door", "command", "close")
    shelter.step(DT)
    moving = shelter.values("door")
    assert moving["position"] == "moving"
    assert moving["command"] == "close"
    assert isinstance(moving["motor_current"], float) and moving["motor_current"] > 1.0

    run(shelter, DOOR_TRAVEL_S + 5)
    after = shelter.values("door")
    assert after["position"] == "closed"
    assert after["closed"] is True and after["locked"] is False
    assert after["command"] == "idle"
    assert after["motor_current"] == 0.0
    assert after["cycle_count"] == before["cycle_count"] + 1  # type: ignore[operator]
    assert after["seal_pressure"] == pytest.approx(50, abs=1.0)


def test_door_locks_only_when_closed() -> None:
    shelter = ShelterPhysics(seed=2)
    shelter.apply_write("door", "command", "lock")
    shelter.step(DT)
    assert shelter.values("door")["position"] == "open"

    close_door(shelter)
    shelter.apply_write("door", "command", "lock")
    shelter.step(DT)
    values = shelter.values("door")
    assert values["position"] == "locked"
    assert values["locked"] is True and values["closed"] is True

    shelter.apply_write("door", "command", "open")
    run(shelter, DOOR_TRAVEL_S + 5)
    values = shelter.values("door")
    assert values["position"] == "open"
    assert values["seal_pressure"] == pytest.approx(0, abs=0.5)


def test_door_refuses_unknown_command() -> None:
    with pytest.raises(ValueError, match="door command"):
        ShelterPhysics().apply_write("door", "command", "slam")


# ---------------------------------------------------------------------------- ventilation


def test_filtered_mode_with_closed_door_builds_overpressure_and_open_door_loses_it() -> None:
    shelter = ShelterPhysics(seed=3)
    close_door(shelter)
    shelter.apply_write("ventilation", "mode", "filtered")
    for _ in range(120):  # 60 s of simulated time is a generous bound
        shelter.step(DT)
        if 30 <= shelter.values("ventilation")["overpressure"] <= 50:  # type: ignore[operator]
            break
    else:
        pytest.fail(f"no overpressure: {shelter.values('ventilation')}")
    run(shelter, 30)
    vent = shelter.values("ventilation")
    assert vent["overpressure"] == pytest.approx(40, abs=3)
    assert vent["airflow"] == pytest.approx(900, abs=50)
    assert vent["fan_current"] == pytest.approx(7, abs=0.5)

    shelter.apply_write("door", "command", "open")
    run(shelter, 30)
    assert shelter.values("ventilation")["overpressure"] < 10  # type: ignore[operator]


def test_clean_and_isolated_modes_hold_no_overpressure() -> None:
    shelter = ShelterPhysics(seed=4)
    close_door(shelter)
    run(shelter, 30)
    vent = shelter.values("ventilation")
    assert 0 <= vent["overpressure"] <= 5  # type: ignore[operator]
    assert vent["airflow"] == pytest.approx(1800, abs=50)
    assert vent["filter_dp"] == 0.0  # no air goes through the filter absorber

    shelter.apply_write("ventilation", "mode", "isolated")
    run(shelter, 30)
    vent = shelter.values("ventilation")
    assert vent["overpressure"] == pytest.approx(0, abs=2)
    assert vent["airflow"] == 0.0


def test_fan_off_stops_current_and_hours() -> None:
    shelter = ShelterPhysics(seed=5)
    hours = shelter.vent.fan_hours
    run(shelter, 360)
    assert shelter.vent.fan_hours == pytest.approx(hours + 0.1)

    shelter.apply_write("ventilation", "fan_running", False)
    run(shelter, 360)
    vent = shelter.values("ventilation")
    assert vent["fan_running"] is False
    assert vent["fan_current"] == 0.0 and vent["airflow"] == 0.0
    assert shelter.vent.fan_hours == pytest.approx(hours + 0.1)


def test_filter_resistance_rises_only_in_filtered_mode() -> None:
    shelter = ShelterPhysics(seed=6)
    start = shelter.vent.filter_resistance
    run(shelter, 3600, dt=10)
    assert shelter.vent.filter_resistance == start

    shelter.apply_write("ventilation", "mode", "filtered")
    run(shelter, 3600, dt=10)
    assert shelter.vent.filter_resistance == pytest.approx(start + 5)
    assert shelter.values("ventilation")["filter_dp"] == pytest.approx(start + 5, abs=3)


def test_fault_hooks_show_and_stop_the_fan() -> None:
    shelter = ShelterPhysics(seed=7)
    assert shelter.values("ventilation")["fan_fault"] is False
    assert shelter.values("ventilation")["filter_alarm"] is False
    shelter.vent.fan_fault = True
    shelter.vent.filter_alarm = True
    shelter.step(DT)
    vent = shelter.values("ventilation")
    assert vent["fan_fault"] is True and vent["filter_alarm"] is True
    assert vent["fan_current"] == 0.0


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="ventilation mode"):
        ShelterPhysics().apply_write("ventilation", "mode", "3")


# ---------------------------------------------------------------------------- environment


def test_co2_rises_in_isolated_mode_with_occupancy_and_decays_when_ventilated() -> None:
    shelter = ShelterPhysics(seed=8)
    assert shelter.values("environment")["co2"] == pytest.approx(0.04, abs=0.01)
    shelter.env.occupancy = 200
    shelter.apply_write("ventilation", "mode", "isolated")
    run(shelter, 3600, dt=10)
    env = shelter.values("environment")
    assert env["co2"] == pytest.approx(0.04 + 200 * 2e-6 * 3600, abs=0.01)
    assert env["o2"] < 20.5  # type: ignore[operator]

    shelter.apply_write("ventilation", "mode", "clean")
    run(shelter, 3600, dt=10)
    assert shelter.values("environment")["co2"] == pytest.approx(0.04, abs=0.01)
    assert shelter.values("environment")["o2"] == pytest.approx(20.9, abs=0.05)


def test_co2_stays_encodable_however_long_isolation_lasts() -> None:
    shelter = ShelterPhysics(seed=9)
    shelter.env.occupancy = 1000
    shelter.apply_write("ventilation", "mode", "isolated")
    run(shelter, 10 * 86400, dt=600)
    point = load_profile("environment").point("co2")
    codec.encode(point, shelter.values("environment")["co2"])


def test_humidity_and_temperature_stay_in_range() -> None:
    shelter = ShelterPhysics(seed=10)
    for _ in range(5000):
        shelter.step(60)
        env = shelter.values("environment")
        assert 40 <= env["humidity"] <= 90  # type: ignore[operator]
        assert env["temperature"] == pytest.approx(18, abs=0.5)


# ---------------------------------------------------------------------------- water, power


def test_pump_refills_a_low_tank_automatically() -> None:
    shelter = ShelterPhysics(seed=11)
    shelter.water.tank_level = 25.0
    shelter.step(DT)
    water = shelter.values("water")
    assert water["pump_running"] is True
    assert water["inlet_pressure"] == pytest.approx(0.35, abs=0.01)
    for _ in range(720):  # an hour is a generous bound for 70 % at the pump's rate
        shelter.step(5)
        if not shelter.values("water")["pump_running"]:
            break
    water = shelter.values("water")
    assert water["pump_running"] is False
    assert water["tank_level"] == pytest.approx(95, abs=0.5)
    assert water["inlet_pressure"] == pytest.approx(0.30, abs=0.01)


def test_low_level_and_manual_pump_override() -> None:
    shelter = ShelterPhysics(seed=12)
    shelter.water.tank_level = 15.0
    shelter.apply_write("water", "pump_running", False)
    shelter.step(DT)
    water = shelter.values("water")
    assert water["low_level"] is True
    assert water["pump_running"] is False  # hand mode: the write wins over automatic control

    shelter.apply_write("water", "pump_running", True)
    run(shelter, 600, dt=5)
    assert shelter.values("water")["low_level"] is False


def test_generator_follows_its_start_coil() -> None:
    shelter = ShelterPhysics(seed=13)
    power = shelter.values("power")
    assert power["mains_present"] is True and power["generator_running"] is False
    assert power["battery_voltage"] == pytest.approx(26.8, abs=0.1)
    assert power["battery_room_temperature"] == pytest.approx(20, abs=0.5)
    shelter.apply_write("power", "generator_start", True)
    assert shelter.values("power")["generator_running"] is True


def test_same_seed_same_readings() -> None:
    a, b = ShelterPhysics(seed=42), ShelterPhysics(seed=42)
    for physics in (a, b):
        physics.apply_write("ventilation", "mode", "filtered")
        run(physics, 20)
    for kind in ShelterPhysics.kinds:
        assert a.values(kind) == b.values(kind)
    assert ShelterPhysics(seed=43).values("environment") != ShelterPhysics(seed=42).values(
        "environment"
    )


def test_every_value_encodes_under_its_profile() -> None:
    shelter = ShelterPhysics(seed=14)
    shelter.env.occupancy = 300
    close_door(shelter)
    shelter.apply_write("ventilation", "mode", "filtered")
    for _ in range(50):
        shelter.step(7)
        for kind, profile_name in SHELTER_PROFILES.items():
            profile = load_profile(profile_name)
            values = shelter.values(kind)
            assert set(values) == {p.name for p in profile.points}
            image = RegisterImage(profile)
            image.render(values)  # raises CodecError on a value the registers cannot hold


# ---------------------------------------------------------------------------- siren


def test_silent_test_passes_and_records_the_time() -> None:
    siren = SirenPhysics(seed=1, clock=lambda: 1_800_000_000.0)
    assert siren.values()["last_self_test_result"] == "none"
    siren.apply_write("siren", "command", "silent_test")
    siren.step(DT)
    assert siren.values()["state"] == "testing"
    run(siren, SILENT_TEST_S)
    values = siren.values()
    assert values["state"] == "idle"
    assert values["last_self_test"] == 1_800_000_000
    assert values["last_self_test_result"] == "pass"
    assert values["command"] == "idle"


def test_silent_test_fails_with_an_amplifier_fault() -> None:
    siren = SirenPhysics(seed=2)
    siren.amplifier_fault = True
    siren.apply_write("siren", "command", "silent_test")
    run(siren, SILENT_TEST_S + 1)
    assert siren.values()["last_self_test_result"] == "fail"
    assert siren.values()["state"] == "fault"


def test_sound_plays_the_signal_for_its_duration_and_stop_ends_it() -> None:
    now = [1_800_000_000.0]
    siren = SirenPhysics(seed=3, clock=lambda: now[0])

    def advance(seconds: float) -> None:
        for _ in range(round(seconds / DT)):
            now[0] += DT
            siren.step(DT)

    with pytest.raises(ValueError, match="signal"):
        siren.apply_write("siren", "command", "sound")
    # One multi-register write carries both; the signal must be taken first.
    siren.apply_writes("siren", {"command": "sound", "signal": "air_raid"})
    values = siren.values()
    assert values["state"] == "sounding" and values["active_signal"] == "air_raid"
    advance(174 - 1)  # 空袭警报: 15 x (6 s on, 6 s off); the last sound ends at 174 s
    assert siren.values()["state"] == "sounding"
    advance(2)
    assert siren.values()["state"] == "idle"
    assert siren.values()["active_signal"] == "none"

    siren.apply_write("siren", "command", "sound")
    advance(DT)
    siren.apply_write("siren", "command", "stop")
    assert siren.values()["state"] == "idle"


def test_siren_values_encode_and_defaults() -> None:
    siren = SirenPhysics(seed=4)
    values = siren.values()
    assert values["ac_power"] is True and values["amplifier_fault"] is False
    assert values["battery_voltage"] == pytest.approx(27.2, abs=0.1)
    assert values["firmware"] == "SW-SIM-1"
    image = RegisterImage(load_profile("siren"))
    image.render(values)
    assert image.decode("firmware") == "SW-SIM-1"


# ---------------------------------------------------------------------------- register image


def test_bit_points_share_a_register() -> None:
    image = RegisterImage(load_profile("ventilation"))
    image.render({"fan_fault": True, "filter_alarm": False})
    assert image.tables[RegisterKind.INPUT][6] == 0b01
    image.render({"filter_alarm": True})
    assert image.tables[RegisterKind.INPUT][6] == 0b11
    image.render({"fan_fault": False})
    assert (image.decode("fan_fault"), image.decode("filter_alarm")) == (False, True)


def test_tables_cover_the_profile() -> None:
    image = RegisterImage(load_profile("ventilation"))
    assert image.size(RegisterKind.INPUT) == 9  # fan_hours: uint32 at 7
    assert image.size(RegisterKind.HOLDING) == 1
    assert image.size(RegisterKind.COIL) == 1
    assert image.size(RegisterKind.DISCRETE) == 1  # none in the profile, still one entry


def test_decode_write_returns_point_values_and_refuses_read_only_registers() -> None:
    image = RegisterImage(load_profile("siren"))
    point = load_profile("siren").point("signal")
    writes = image.decode_write(RegisterKind.HOLDING, 0, [1, *codec.encode(point, "prealert")])
    assert writes == {"command": "sound", "signal": "prealert"}
    assert image.decode("command") == "idle"  # the physics decides what the registers say
    with pytest.raises(NotWritable):
        image.decode_write(RegisterKind.HOLDING, 1, [0, 0])  # runs past the last register
    with pytest.raises(NotWritable):
        image.decode_write(RegisterKind.INPUT, 0, [0])
    with pytest.raises(CodecError):
        image.decode_write(RegisterKind.HOLDING, 0, [0x10000])
