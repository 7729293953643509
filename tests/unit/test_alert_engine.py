"""The alert engine, pure: every rule kind, the lifecycle, and state across a restart."""

from __future__ import annotations

import random
from typing import Any

import pytest

from collector.alerts import AlertEngine, AlertEvent, RulePack, load_rules, parse_rules, theil_sen
from collector.alerts.service import alert_sample
from collector.ingest import GatewayStatus
from shelterwatch.store import DeviceStatus, FieldValue, Sample

T0 = 1_758_160_000_000
S = 1000  # ms


def pack(*rules: dict[str, Any]) -> RulePack:
    return parse_rules({"rules": list(rules)})


def sample(
    kind: str, device: str, ts: int, site: str = "shelter-01", **fields: FieldValue
) -> Sample:
    return Sample(kind, site, "gw-01", device, ts, fields)


OVERPRESSURE = {
    "name": "overpressure_low",
    "kind": "threshold",
    "severity": "critical",
    "device_kind": "ventilation",
    "point": "overpressure",
    "below": 30,
    "hysteresis": 2,
    "for_s": 60,
    "clear_for_s": 30,
}
CONDITIONS = [
    {"device_kind": "ventilation", "point": "mode", "value": "filtered"},
    {"device_kind": "door", "point": "closed", "value": True},
]


def feed(engine: AlertEngine, *samples: Sample) -> list[AlertEvent]:
    for s in samples:
        engine.on_sample(s)
    return engine.events()


def vent(ts: int, p: float, **kw: FieldValue) -> Sample:
    return Sample("ventilation", "shelter-01", "gw-01", "vent", ts, {"overpressure": p, **kw})


# -- threshold ------------------------------------------------------------------------------------


def test_threshold_raises_after_its_duration_and_once() -> None:
    engine = AlertEngine(pack(OVERPRESSURE))
    assert feed(engine, vent(T0, 18.4)) == []
    assert feed(engine, vent(T0 + 30 * S, 18.0)) == []
    [event] = feed(engine, vent(T0 + 61 * S, 18.2))
    a = event.alert
    assert (event.site, event.rule, event.device, event.gateway) == (
        "shelter-01",
        "overpressure_low",
        "vent",
        "gw-01",
    )
    assert a.active and a.severity == "critical" and a.kind == "threshold"
    assert a.point == "overpressure"
    # Raised when the duration ran out, not when the next sample happened to come.
    assert a.raised_ts == a.ts == T0 + 60 * S
    assert a.value == 18.2  # the reading that showed the duration had run out
    # Still low: one active alert, no flood.
    assert feed(engine, *(vent(T0 + (62 + i) * S, 17.0) for i in range(100))) == []


def test_a_short_dip_does_not_raise() -> None:
    engine = AlertEngine(pack(OVERPRESSURE))
    assert feed(engine, vent(T0, 20), vent(T0 + 50 * S, 35), vent(T0 + 70 * S, 20)) == []
    assert feed(engine, vent(T0 + 125 * S, 20)) == []
    [event] = feed(engine, vent(T0 + 131 * S, 20))
    assert event.alert.raised_ts == T0 + 130 * S


def test_threshold_clears_past_the_hysteresis_for_the_clear_duration() -> None:
    engine = AlertEngine(pack(OVERPRESSURE))
    feed(engine, vent(T0, 10), vent(T0 + 60 * S, 10))
    assert engine.active()
    # Back above 30 but inside the hysteresis band (< 32): stays active however long.
    assert feed(engine, vent(T0 + 100 * S, 31), vent(T0 + 500 * S, 31.9)) == []
    # Past 32, but not for 30 s yet.
    assert feed(engine, vent(T0 + 510 * S, 33), vent(T0 + 530 * S, 34)) == []
    # Dips into the band again: the clear timer starts over.
    assert feed(engine, vent(T0 + 535 * S, 31)) == []
    assert feed(engine, vent(T0 + 540 * S, 40), vent(T0 + 560 * S, 40)) == []
    [event] = feed(engine, vent(T0 + 571 * S, 40))
    assert not event.alert.active
    assert event.alert.ts == T0 + 570 * S and event.alert.raised_ts == T0 + 60 * S
    assert event.alert.message.startswith("cleared: ")
    assert engine.active() == {}


def test_tick_raises_on_time_when_no_sample_comes() -> None:
    # Report by exception: a value that stays low sends nothing more; the timer still runs out.
    engine = AlertEngine(pack(OVERPRESSURE))
    feed(engine, vent(T0, 12.5))
    engine.tick(T0 + 59 * S)
    assert engine.events() == []
    engine.tick(T0 + 61 * S)
    [event] = engine.events()
    assert event.alert.raised_ts == T0 + 60 * S and event.alert.value == 12.5
    assert event.alert.message.startswith("overpressure of vent is 12.5")


def test_equals_rules_on_bools_and_enums() -> None:
    engine = AlertEngine(load_rules())
    events = feed(
        engine,
        sample(
            "siren",
            "siren-1",
            T0,
            site="post-01",
            ac_power=True,
            amplifier_fault=1,
            last_self_test_result="pass",
            battery_voltage=26.8,
        ),
    )
    # amplifier_fault == true must not match the number 1.
    assert events == []
    events = feed(
        engine,
        sample(
            "siren",
            "siren-1",
            T0 + S,
            site="post-01",
            amplifier_fault=True,
            last_self_test_result="fail",
        ),
    )
    assert sorted(e.rule for e in events) == ["siren_amplifier_fault", "siren_self_test_failed"]
    events = feed(
        engine,
        sample(
            "siren", "siren-1", T0 + 20 * S, site="post-01", ac_power=False, battery_voltage=23.1
        ),
    )
    assert events == []  # both have a duration
    events = feed(
        engine,
        sample(
            "siren", "siren-1", T0 + 90 * S, site="post-01", ac_power=False, battery_voltage=23.0
        ),
    )
    assert sorted(e.rule for e in events) == ["siren_ac_lost", "siren_battery_low"]
    low = next(e for e in events if e.rule == "siren_battery_low")
    assert low.alert.message == "Siren siren-1: battery 23.0 V (below 24.0 V)"


def test_a_stalled_door_motor_raises_but_a_moving_door_does_not() -> None:
    engine = AlertEngine(load_rules())

    def door(ts: int, amps: float) -> Sample:
        return sample("door", "door", ts, motor_current=amps)

    # A door travelling draws its running current, with a start-up surge shorter than for_s.
    assert feed(engine, door(T0, 0.0), door(T0 + S, 9.5), door(T0 + 2 * S, 4.5)) == []
    assert feed(engine, door(T0 + 10 * S, 0.0)) == []
    # A held command against a jammed leaf: the stall current for 3 s.
    assert feed(engine, door(T0 + 20 * S, 9.0)) == []
    engine.tick(T0 + 23 * S)
    [event] = engine.events()
    assert event.rule == "door_motor_stall" and event.alert.severity == "major"
    assert event.alert.raised_ts == T0 + 23 * S
    assert event.alert.message.startswith("Door door: motor stalled at 9.0 A (above 8 A)")
    # Inside the hysteresis band (above 6 A) the motor is still pushing: the alert holds.
    assert feed(engine, door(T0 + 30 * S, 7.0), door(T0 + 40 * S, 7.0)) == []
    # The command dropped: no current, cleared after clear_for_s.
    assert feed(engine, door(T0 + 50 * S, 0.0)) == []
    engine.tick(T0 + 52 * S)
    [event] = engine.events()
    assert event.rule == "door_motor_stall" and not event.alert.active


def test_lost_mains_of_a_shelter_raises_and_clears_when_it_is_back() -> None:
    engine = AlertEngine(load_rules())

    def power(ts: int, mains: bool) -> Sample:
        return sample("power", "power", ts, mains_present=mains)

    # A blink shorter than for_s (the transfer to the generator) raises nothing.
    assert feed(engine, power(T0, True), power(T0 + S, False), power(T0 + 5 * S, True)) == []
    assert feed(engine, power(T0 + 20 * S, False)) == []
    engine.tick(T0 + 29 * S)
    assert engine.events() == []
    engine.tick(T0 + 30 * S)
    [event] = engine.events()
    assert (event.rule, event.site, event.device) == ("mains_lost", "shelter-01", "power")
    assert event.alert.severity == "major" and event.alert.raised_ts == T0 + 30 * S
    assert event.alert.message.startswith("Shelter shelter-01: mains power lost (power)")
    [event] = feed(engine, power(T0 + 60 * S, True))
    assert not event.alert.active
    assert engine.active() == {}


def test_site_parameters_override_rule_defaults() -> None:
    engine = AlertEngine(load_rules(), site_params={"shelter-02": {"water_reserve_pct": 50}})
    for site in ("shelter-01", "shelter-02"):
        feed(engine, sample("water", "tank", T0, site=site, tank_level=40.0))
        feed(engine, sample("water", "tank", T0 + 200 * S, site=site, tank_level=40.0))
    assert set(engine.active()) == {("water_reserve_low", "shelter-02", "tank")}


# -- conditions -----------------------------------------------------------------------------------


def test_conditions_on_other_points_of_the_site() -> None:
    engine = AlertEngine(pack(OVERPRESSURE | {"when": CONDITIONS}))

    def door(dev: str, ts: int, closed: bool) -> Sample:
        return sample("door", dev, ts, closed=closed)

    feed(engine, door("door-a", T0, True), door("door-b", T0, False))
    feed(engine, vent(T0, 10, mode="filtered"), vent(T0 + 100 * S, 10))
    assert engine.active() == {}  # one door open: the rule does not apply
    feed(engine, door("door-b", T0 + 110 * S, True))  # both closed now: the timer starts
    assert feed(engine, vent(T0 + 150 * S, 10)) == []
    [raised] = feed(engine, vent(T0 + 171 * S, 10))
    assert raised.alert.raised_ts == T0 + 170 * S
    # Switching to clean mode ends the rule's applicability: it clears (after clear_for_s),
    # even though no overpressure sample came.
    feed(engine, sample("ventilation", "vent", T0 + 200 * S, mode="clean"))
    engine.tick(T0 + 231 * S)
    [cleared] = engine.events()
    assert not cleared.alert.active and cleared.alert.ts == T0 + 230 * S


def test_unknown_conditions_hold_the_rule() -> None:
    engine = AlertEngine(pack(OVERPRESSURE | {"when": CONDITIONS}))
    # No door has reported: "both doors closed" is unknown, so nothing starts.
    feed(engine, vent(T0, 10, mode="filtered"), vent(T0 + 100 * S, 10))
    assert engine.active() == {}


def test_any_match_and_device_scope() -> None:
    rule = {
        "name": "co2",
        "kind": "threshold",
        "device_kind": "environment",
        "point": "co2",
        "above": 2.5,
        "when": [
            {"device_kind": "ventilation", "point": "mode", "value": "isolated", "match": "any"}
        ],
    }
    engine = AlertEngine(pack(rule))
    feed(
        engine,
        sample("ventilation", "v1", T0, mode="clean"),
        sample("ventilation", "v2", T0, mode="isolated"),
    )
    [event] = feed(engine, sample("environment", "env", T0 + S, co2=2.7))
    assert event.rule == "co2"


# -- trend --------------------------------------------------------------------------------------


def test_theil_sen_ignores_outliers_that_move_least_squares() -> None:
    rng = random.Random(7)
    points = [(float(x), 100.0 + 2.0 * x + rng.gauss(0, 0.5)) for x in range(60)]
    for i in (5, 17, 33, 41, 50):
        points[i] = (points[i][0], 5000.0)  # spikes: a glitching transmitter
    slope, intercept = theil_sen(points)
    assert slope == pytest.approx(2.0, abs=0.05)
    assert intercept == pytest.approx(100.0, abs=1.5)


def _filter_rule(**kw: Any) -> dict[str, Any]:
    return {
        "name": "filter_clogging",
        "kind": "trend",
        "severity": "minor",
        "device_kind": "ventilation",
        "point": "filter_dp",
        "limit": "clean",
        "limit_factor": 2,
        "params": {"clean": 120},
        "window_s": 7 * 86400,
        "sample_every_s": 3600,
        "min_points": 24,
        "horizon_s": 14 * 86400,
        "when": [
            {"device_kind": "ventilation", "point": "mode", "value": "filtered", "scope": "device"}
        ],
    } | kw


def test_trend_predicts_when_the_limit_is_reached_despite_noise_and_outliers() -> None:
    # 120 Pa clean, fouling 6 Pa a day: 240 Pa (2x) is reached 20 days after the start.
    rng = random.Random(3)
    engine = AlertEngine(pack(_filter_rule()))
    hour = 3600 * S
    events: list[AlertEvent] = []
    engine.on_sample(sample("ventilation", "vent", T0, mode="filtered"))
    for h in range(0, 24 * 10):
        dp = 120 + 6 * h / 24 + rng.gauss(0, 1.5)
        if h % 17 == 0:
            dp = 900.0  # outliers
        engine.on_sample(sample("ventilation", "vent", T0 + h * hour, filter_dp=dp))
        events += engine.events()
    [event] = events
    a = event.alert
    assert a.kind == "trend" and a.predicted_ts is not None
    # Raised when 14 days were left, i.e. around day 6; predicted for day 20.
    assert a.raised_ts is not None
    assert T0 + 5.5 * 86400 * S <= a.raised_ts <= T0 + 6.5 * 86400 * S
    assert abs(a.predicted_ts - (T0 + 20 * 86400 * S)) < 0.5 * 86400 * S
    assert "in about" not in a.message or "days" in a.message


def test_trend_ignores_samples_while_its_conditions_do_not_hold() -> None:
    engine = AlertEngine(pack(_filter_rule()))
    engine.on_sample(sample("ventilation", "vent", T0, mode="clean"))
    for h in range(100):
        engine.on_sample(sample("ventilation", "vent", T0 + h * 3600 * S, filter_dp=0.0 + h))
    assert engine.events() == []


def test_falling_trend_clears_when_the_decay_stops() -> None:
    rule = {
        "name": "seal",
        "kind": "trend",
        "device_kind": "door",
        "point": "seal_pressure",
        "direction": "falling",
        "limit": 40,
        "window_s": 600,
        "sample_every_s": 10,
        "min_points": 12,
        "horizon_s": 1800,
        "reset_when_off": True,
        "when": [{"device_kind": "door", "point": "closed", "value": True, "scope": "device"}],
    }
    engine = AlertEngine(pack(rule))
    engine.on_sample(sample("door", "d1", T0, closed=True))
    events: list[AlertEvent] = []
    for i in range(60):  # 0.01 kPa/s: 50 → 40 kPa in 1000 s
        engine.on_sample(sample("door", "d1", T0 + i * 10 * S, seal_pressure=50 - 0.1 * i))
        events += engine.events()
    assert [e.alert.active for e in events] == [True]
    engine.on_sample(sample("door", "d1", T0 + 700 * S, closed=False))
    [cleared] = engine.events()
    assert not cleared.alert.active


# -- stale, flatline, offline ----------------------------------------------------------------------


def test_stale_raises_after_n_intervals_and_clears_on_data() -> None:
    rule = {"name": "silent", "kind": "stale", "interval_s": 60, "factor": 3}
    engine = AlertEngine(pack(rule))
    feed(engine, sample("water", "tank", T0, tank_level=50.0))
    engine.tick(T0 + 179 * S)
    assert engine.events() == []
    engine.tick(T0 + 181 * S)
    [raised] = engine.events()
    assert raised.alert.kind == "stale" and raised.alert.raised_ts == T0 + 180 * S
    engine.tick(T0 + 400 * S)
    assert engine.events() == []  # one alert
    [cleared] = feed(engine, sample("water", "tank", T0 + 401 * S, tank_level=50.0))
    assert not cleared.alert.active and cleared.alert.ts == T0 + 401 * S


def test_stale_is_silent_for_offline_devices_and_gateways() -> None:
    engine = AlertEngine(pack({"name": "silent", "kind": "stale", "interval_s": 1}))
    feed(
        engine,
        sample("water", "tank", T0, tank_level=50.0),
        sample("power", "pwr", T0, site="shelter-01", mains_present=True),
    )
    engine.on_status(DeviceStatus("shelter-01", "gw-01", "tank", "water", T0 + S, False))
    engine.on_gateway(GatewayStatus("gw-01", "shelter-01", False, T0 + S))
    engine.tick(T0 + 60 * S)
    assert engine.events() == []


def test_a_device_back_from_an_outage_is_not_stale_before_its_first_data() -> None:
    # The gateway publishes "online" before the first data; a tick in between must not raise
    # a stale alert back-dated into the outage.
    engine = AlertEngine(pack({"name": "silent", "kind": "stale", "interval_s": 60, "factor": 3}))
    feed(engine, sample("water", "tank", T0, tank_level=50.0))
    engine.on_status(DeviceStatus("shelter-01", "gw-01", "tank", "water", T0 + S, False))
    back = T0 + 300 * S
    engine.on_status(DeviceStatus("shelter-01", "gw-01", "tank", "water", back, True))
    engine.tick(back + 50)
    assert engine.events() == []
    feed(engine, sample("water", "tank", back + 100, tank_level=50.0))
    assert engine.events() == []


def test_flatline_finds_a_stuck_sensor_only_while_it_should_move() -> None:
    rule = {
        "name": "stuck",
        "kind": "flatline",
        "device_kind": "ventilation",
        "point": "overpressure",
        "window_s": 600,
        "min_change": 0.05,
        "when": [
            {"device_kind": "ventilation", "point": "fan_running", "value": True, "scope": "device"}
        ],
    }
    engine = AlertEngine(pack(rule))
    rng = random.Random(1)
    feed(engine, vent(T0, 40.0, fan_running=True))
    for i in range(1, 120):  # a live gauge: 20 min of noise
        assert feed(engine, vent(T0 + i * 10 * S, 40 + rng.gauss(0, 0.3))) == []
    stuck_from = T0 + 1200 * S
    feed(engine, vent(stuck_from, 41.3))
    for i in range(1, 59):
        assert feed(engine, vent(stuck_from + i * 10 * S, 41.3)) == []
    [raised] = feed(engine, vent(stuck_from + 600 * S, 41.3))
    assert raised.alert.kind == "flatline" and raised.alert.raised_ts == stuck_from + 600 * S
    [cleared] = feed(engine, vent(stuck_from + 700 * S, 39.0))
    assert not cleared.alert.active
    # A stopped fan: flat on purpose, no alert.
    feed(engine, vent(stuck_from + 710 * S, 0.0, fan_running=False))
    for i in range(1, 200):
        assert feed(engine, vent(stuck_from + (710 + 10 * i) * S, 0.0)) == []


def test_device_and_gateway_offline() -> None:
    engine = AlertEngine(load_rules())

    def status(ts: int, online: bool) -> None:
        engine.on_status(DeviceStatus("post-01", "gw-9", "siren-1", "siren", ts, online))

    status(T0, True)
    status(T0 + S, False)
    assert engine.events() == []
    engine.tick(T0 + 32 * S)
    [raised] = engine.events()
    assert (raised.rule, raised.device, raised.alert.raised_ts) == (
        "device_offline",
        "siren-1",
        T0 + 31 * S,
    )
    status(T0, True)  # an older state arriving late changes nothing
    assert engine.events() == []
    status(T0 + 40 * S, True)
    [cleared] = engine.events()
    assert not cleared.alert.active

    engine.on_gateway(GatewayStatus("gw-9", "post-01", False, T0 + 50 * S))
    engine.tick(T0 + 81 * S)
    [gw] = engine.events()
    assert (gw.rule, gw.site, gw.device, gw.alert.severity) == (
        "gateway_offline",
        "post-01",
        "gw-9",
        "critical",
    )
    assert gw.alert.message == "Gateway gw-9 of post-01 is offline: no data from the whole site"


# -- posture ----------------------------------------------------------------------------------


def test_posture_mismatch() -> None:
    engine = AlertEngine(load_rules(), postures={"shelter-01": "wartime"})
    feed(
        engine,
        sample("door", "door-a", T0, closed=False),
        sample("door", "door-a", T0, site="shelter-02", closed=False),
    )
    engine.tick(T0 + 61 * S)
    [event] = engine.events()
    assert (event.rule, event.site, event.device) == (
        "door_open_in_wartime",
        "shelter-01",
        "door-a",
    )
    assert event.alert.kind == "posture"
    # Back to peacetime: the door may be open.
    engine.set_posture("shelter-01", "peacetime", T0 + 70 * S)
    [cleared] = engine.events()
    assert not cleared.alert.active
    # shelter-02 goes to wartime with its door still open: the timer starts then.
    engine.set_posture("shelter-02", "wartime", T0 + 100 * S)
    engine.tick(T0 + 161 * S)
    [event] = engine.events()
    assert event.site == "shelter-02" and event.alert.raised_ts == T0 + 160 * S


# -- repeat, persistence, events as records --------------------------------------------------------


def test_critical_alerts_repeat_with_the_same_raised_ts() -> None:
    engine = AlertEngine(
        pack(OVERPRESSURE, OVERPRESSURE | {"name": "minor_one", "severity": "minor"}),
        repeat_critical_s=300,
    )
    feed(engine, vent(T0, 10), vent(T0 + 60 * S, 10))
    assert len(engine.events()) == 0
    engine.tick(T0 + 359 * S)
    assert engine.events() == []
    engine.tick(T0 + 361 * S)
    [repeat] = engine.events()
    assert repeat.repeat and repeat.rule == "overpressure_low"
    assert repeat.alert.raised_ts == T0 + 60 * S and repeat.alert.ts == T0 + 361 * S
    engine.tick(T0 + 600 * S)
    assert engine.events() == []


def _restart(engine: AlertEngine, state: dict[str, str], **kw: Any) -> AlertEngine:
    for key, value in engine.take_changes():
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return AlertEngine(pack(OVERPRESSURE | {"when": CONDITIONS}), state=state, **kw)


def test_a_restart_mid_timer_raises_on_time_and_once() -> None:
    state: dict[str, str] = {}
    first = AlertEngine(pack(OVERPRESSURE | {"when": CONDITIONS}))
    feed(
        first,
        sample("door", "door-a", T0, closed=True),
        vent(T0, 20, mode="filtered"),
        vent(T0 + 30 * S, 19),
    )
    # The collector dies 30 s into the 60 s timer. The new one knows the conditions too.
    second = _restart(first, state, now_ms=T0 + 40 * S)
    assert second.events() == []
    second.tick(T0 + 59 * S)
    assert second.events() == []
    second.tick(T0 + 61 * S)
    [raised] = second.events()
    assert raised.alert.raised_ts == T0 + 60 * S
    # And again: a restart with the alert active neither re-raises nor forgets it.
    third = _restart(second, state, now_ms=T0 + 100 * S)
    feed(third, vent(T0 + 120 * S, 18))
    third.tick(T0 + 200 * S)
    assert third.events() == []
    assert set(third.active()) == {("overpressure_low", "shelter-01", "vent")}
    feed(third, vent(T0 + 300 * S, 40))
    [cleared] = feed(third, vent(T0 + 331 * S, 40))
    assert not cleared.alert.active and cleared.alert.raised_ts == T0 + 60 * S
    fourth = _restart(third, state, now_ms=T0 + 400 * S)
    assert fourth.active() == {}


def test_a_restart_keeps_trend_windows_and_stale_alerts() -> None:
    state: dict[str, str] = {}
    rules = pack(_filter_rule(), {"name": "silent", "kind": "stale", "interval_s": 10})
    first = AlertEngine(rules)
    first.on_sample(sample("ventilation", "vent", T0, mode="filtered"))
    for h in range(30):
        first.on_sample(sample("ventilation", "vent", T0 + h * 3600 * S, filter_dp=120.0 + h))
    first.tick(T0 + 40 * 3600 * S)
    [stale] = [e for e in first.events() if e.rule == "silent"]
    for key, value in first.take_changes():
        if value is not None:
            state[key] = value
    second = AlertEngine(rules, state=state, now_ms=T0 + 41 * 3600 * S)
    assert ("silent", "shelter-01", "vent") in second.active()
    events = feed(second, sample("ventilation", "vent", T0 + 42 * 3600 * S, filter_dp=160.0))
    assert [e.rule for e in events] == ["silent"] and not events[0].alert.active
    assert stale.alert.active


def test_a_rule_removed_from_the_pack_clears_its_alerts() -> None:
    first = AlertEngine(pack(OVERPRESSURE))
    feed(first, vent(T0, 10), vent(T0 + 60 * S, 10))
    state = {k: v for k, v in first.take_changes() if v is not None}
    second = AlertEngine(pack(OVERPRESSURE | {"name": "other"}), state=state, now_ms=T0 + 99)
    [cleared] = second.events()
    assert cleared.rule == "overpressure_low" and not cleared.alert.active
    assert all(v is None for k, v in second.take_changes() if k.startswith("r/overpressure"))


def test_old_samples_are_not_evaluated() -> None:
    engine = AlertEngine(pack(OVERPRESSURE))
    feed(engine, vent(T0 + 100 * S, 40), vent(T0, 10), vent(T0 + 10 * S, 10))
    engine.tick(T0 + 200 * S)
    assert engine.stats.out_of_order == 2 and engine.events() == []


def test_alert_events_become_store_records() -> None:
    engine = AlertEngine(load_rules())
    [event] = feed(engine, sample("siren", "siren-1", T0, site="post-01", amplifier_fault=True))
    record = alert_sample(event)
    assert (record.measurement, record.site, record.gateway, record.device, record.ts_ms) == (
        "alert",
        "post-01",
        "siren_amplifier_fault",
        "siren-1",
        T0,
    )
    assert record.fields["active"] is True and record.fields["severity"] == "critical"
    assert record.fields["value_text"] == "true" and record.fields["source_gateway"] == "gw-01"
