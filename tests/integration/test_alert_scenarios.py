"""Every simulator fault scenario raises exactly its alert over the real path, and it clears.

The path is the real one: firmware_sim devices (Modbus TCP) → one gateway per site → a real
Mosquitto → the collector with its alert engine → alerts on ``{prefix}/alert/#``, recorded by
an MQTT subscriber per (site, rule, device): raises (a repeat of a critical alert has the same
``raised_ts`` and is not a new raise) and clears; the zero-length retained removals are ignored.

All cases run at once in one fleet, one site each, one gateway per site, one collector (the
module takes about 80 s). Every scenario has a case; power_loss has two, because a shelter and
a siren post report lost mains through different points and rules. Per case the test asserts
that the expected alert is raised within the stated bound after the fault is switched on, that
it clears within the stated bound after the repair, that it is raised and cleared exactly once,
and that no other alert is raised for the site, from its first data to the end (``SETTLE_S``
after the last clear). Before any fault, every site must have been quiet for ``BASELINE_S``.

The rule pack is the shipped default pack (``collector/alerts/default_rules.yaml``) with only
its TIME compressed (``tests/alert_rules_fast.py``): every ``for_s``, ``clear_for_s``,
``window_s``, ``sample_every_s``, ``horizon_s``, ``clear_horizon_s`` and ``interval_s`` is
divided by ``FACTOR`` = 60 (a minute becomes a second), as is the collector's
``repeat_critical_s``. Limits, hysteresis, conditions, severities and ``min_points`` are the
shipped ones, so the rules' logic is the shipped logic. One rule gets another factor
(``PER_RULE``): ``filter_clogging`` samples one point an hour and needs 24, so it is divided
by 3600 (an hour becomes a second); at 1/60 its window alone would take 24 minutes to fill.

``device_silent`` is compressed like the rest (3 s), shorter than the comm_loss outage: a device
coming back after an outage longer than the silence limit must not raise a stale alert between
its "online" state and its first data (the engine once did; see test_alert_engine).

The gateways poll every ``POLL_S`` and send a full snapshot every ``SNAPSHOT_S`` (the
production 60 s at 1/60), well inside the silence limit for a live device.

The simulator's physics is not compressed: a bound is the physics' own time plus the scaled
rule durations, with a margin for a loaded machine (each case says where its bounds come
from). Preconditions are set in the physics before anything connects: the seal_leak shelter's
door is closed with its seal inflated (door_seal_decay watches a closed door only), every
shelter's humidity starts at 60 %RH (a seeded start can be close to 75 %), and the water_leak
shelter's tank starts at 31 %. Everything else is the default state: doors open, clean
ventilation, peacetime. That is also why seal_leak raises door_seal_decay only
(overpressure_low needs filtered mode) and filter_clogging, which switches its shelter to
filtered mode, does not raise overpressure_low (its door is open). The stuck sensor is the
ventilation's overpressure gauge, which the shipped ``overpressure_stuck`` flatline rule
watches; comm_loss is on a siren post, whose single device gives a single device_offline.
A jammed door draws its stall current only while a command is held, so the door_jam case
orders its open door closed once the fault is on (``Case.then``); the door stays open, so no
rule that needs a closed door applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from alert_rules_fast import fast_rules
from platform_helpers import collector_for, gateways_for, mqtt_settings, running
from servers import MosquittoServer, wait_until

from firmware_sim.fleet import Fleet, FleetSpec
from firmware_sim.physics import DOOR_TRAVEL_S
from firmware_sim.scenarios import SCENARIOS
from shelterwatch.config import MqttSettings
from shelterwatch.contract import Alert
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.store.sqlite import SqliteStore

pytestmark = pytest.mark.integration

FACTOR = 60.0  # rule time: one minute becomes one second
# filter_clogging samples hourly: an hour becomes a second.
PER_RULE = {"filter_clogging": 3600.0}
POLL_S = 0.5
SNAPSHOT_S = 60.0 / FACTOR
BASELINE_S = 8.0  # quiet time before the faults (door_seal_decay needs 12 points first)
SETTLE_S = 3.0  # after the last clear: nothing else may come


@dataclass(frozen=True)
class Case:
    site: str
    scenario: str
    options: dict[str, bool | float | str]
    rule: str
    device: str
    raise_within_s: float  # from switching the fault on to the raise seen on MQTT
    clear_within_s: float  # from the repair to the clear seen on MQTT
    why: str  # where the bounds come from
    # A write to the site's physics right after the fault is on, as a person at the device
    # would make it: (device kind, point, value). A jammed door stalls only when ordered.
    then: tuple[str, str, str] | None = None


CASES = [
    Case(
        site="shelter-01",
        scenario="seal_leak",
        options={},
        rule="door_seal_decay",
        device="door",
        raise_within_s=20,
        clear_within_s=25,
        why="the seal falls 1 kPa/s from 50 kPa (the 40 kPa limit in 10 s); the Theil-Sen line "
        "predicts the limit inside the 30 s horizon within a few s. After the repair the seal "
        "re-inflates (tau 1 s) and the falling points leave the 10 s window",
    ),
    Case(
        site="shelter-02",
        scenario="filter_clogging",
        options={},
        rule="filter_clogging",
        device="vent",
        raise_within_s=45,
        clear_within_s=10,
        why="filtered from the fault on: 24 points (min_points) at one a second, then 2 x 180 Pa "
        "is predicted about 40 s ahead, inside the 336 s horizon. The repair switches the mode "
        "back, the rule's when: (filtered) fails, which clears it at once",
    ),
    Case(
        site="shelter-03",
        scenario="fan_failure",
        options={},
        rule="fan_fault",
        device="vent",
        raise_within_s=10,
        clear_within_s=10,
        why="fan_fault true for for_s 5/60 s; it clears at once (no clear_for_s)",
    ),
    Case(
        site="shelter-04",
        scenario="water_leak",
        options={"rate_pct_s": 0.2},
        rule="water_reserve_low",
        device="water",
        raise_within_s=25,
        clear_within_s=85,
        why="from 31 % at 0.2 %/s below 30 % in 5 s, raised 120/60 s later at about 29.6 %. "
        "After the repair the pump (on since 30 %) refills 0.045 %/s net up to 32 % "
        "(hysteresis 2): about 55 s of physics, then clear_for_s 1 s",
    ),
    Case(
        site="shelter-05",
        scenario="rising_humidity",
        options={"rate_pct_s": 2.0},
        rule="humidity_high",
        device="env",
        raise_within_s=30,
        clear_within_s=25,
        why="from 60 %RH at 2 %/s past 75 % in 7.5 s, raised 600/60 s later; after the repair "
        "it falls at 2 %/s below 72 % (hysteresis 3) within 7 s, then clear_for_s 5 s",
    ),
    Case(
        site="shelter-06",
        scenario="stuck_sensor",
        options={"device": "vent", "point": "overpressure"},
        rule="overpressure_stuck",
        device="vent",
        raise_within_s=42,
        clear_within_s=10,
        why="the flatline window is 1800/60 = 30 s from the gauge's last movement; the live "
        "gauge moves by the next snapshot after the repair (noise 0.3 Pa, min_change 0.05 Pa)",
    ),
    Case(
        site="shelter-07",
        scenario="door_jam",
        options={},
        rule="door_motor_stall",
        device="door",
        raise_within_s=10,
        clear_within_s=10,
        why="the door is ordered closed once jammed: the stall current (9 A) at the next physics "
        "step, above 8 A for for_s 3/60 s. The repair drops the held command, the current is 0 "
        "at the next step, below 6 A (hysteresis 2) for clear_for_s 2/60 s",
        then=("door", "command", "close"),
    ),
    Case(
        site="shelter-08",
        scenario="power_loss",
        options={},
        rule="mains_lost",
        device="power",
        raise_within_s=10,
        clear_within_s=10,
        why="mains_present false at the next poll, for_s 10/60 s; back at once after the repair "
        "(no clear_for_s)",
    ),
    Case(
        site="siren-05",
        scenario="power_loss",
        options={},
        rule="siren_ac_lost",
        device="siren",
        raise_within_s=10,
        clear_within_s=10,
        why="ac_power false at the next poll, for_s 10/60 s; back at once after the repair. On "
        "battery it drains 0.0005 V/s, hours from siren_battery_low, and no self-test runs",
    ),
    Case(
        site="siren-01",
        scenario="siren_battery_decay",
        options={"rate_v_s": 0.5},
        rule="siren_battery_low",
        device="siren",
        raise_within_s=20,
        clear_within_s=10,
        why="27.2 V at 0.5 V/s below 24 V in 6.4 s, raised 60/60 s later; a new battery reads "
        "27.2 V at the next step, cleared after clear_for_s 1 s",
    ),
    Case(
        site="siren-02",
        scenario="siren_amplifier_fault",
        options={},
        rule="siren_amplifier_fault",
        device="siren",
        raise_within_s=10,
        clear_within_s=10,
        why="amplifier_fault true raises at once (no for_s) and clears at once",
    ),
    Case(
        site="siren-04",
        scenario="siren_driver_fault",
        options={},
        rule="siren_self_test_failed",
        device="siren",
        raise_within_s=10,
        clear_within_s=10,
        why="the controller's line supervision records a failed self-test at the next physics "
        "step and a passed one after the repair; the rule has no for_s",
    ),
    Case(
        site="siren-03",
        scenario="comm_loss",
        options={},
        rule="device_offline",
        device="siren",
        raise_within_s=10,
        clear_within_s=15,
        why="the next poll fails, the gateway reports the device offline, for_s 30/60 s. After "
        "the repair the next poll reaches it: the gateway polls a silent device less often "
        "(0.5, 1, 2, 4, then 5 s apart) and its link retries with a doubling backoff",
    ),
]


@dataclass
class Events:
    """Alert events seen on MQTT, per (site, rule, device), with the monotonic time seen."""

    devices: set[tuple[str, str]] = field(default_factory=set)  # (gateway, device) with data
    raised: dict[tuple[str, str, str], list[tuple[int, float]]] = field(default_factory=dict)
    cleared: dict[tuple[str, str, str], list[tuple[int, float]]] = field(default_factory=dict)

    def add(self, key: tuple[str, str, str], alert: Alert) -> None:
        assert alert.raised_ts is not None
        seen = time.monotonic()
        if alert.active:
            raises = self.raised.setdefault(key, [])
            # A repeat of a critical alert has the raised_ts of its raise: not a new raise.
            if all(ts != alert.raised_ts for ts, _ in raises):
                raises.append((alert.raised_ts, seen))
        else:
            self.cleared.setdefault(key, []).append((alert.raised_ts, seen))

    def raised_at(self, site: str) -> dict[tuple[str, str], int]:
        """(rule, device) → how many raises, for one site."""
        return {(r, d): len(v) for (s, r, d), v in self.raised.items() if s == site}


@contextlib.asynccontextmanager
async def recording(mqtt: MqttSettings) -> AsyncIterator[Events]:
    events = Events()
    prefix = f"{mqtt.prefix}/alert/"
    async with MqttClient(mqtt, f"alerts-{uuid.uuid4().hex[:8]}") as console:
        await console.subscribe([f"{mqtt.prefix}/alert/#", f"{mqtt.prefix}/gw/+/dev/+/data"])

        async def listen() -> None:
            async for message in console.messages():
                if not message.topic.startswith(prefix):
                    parts = message.topic.removeprefix(f"{mqtt.prefix}/gw/").split("/")
                    events.devices.add((parts[0], parts[2]))
                    continue
                if not message.payload:
                    continue  # the removal of a retained raise after its clear
                site, rule, device = message.topic.removeprefix(prefix).split("/")
                events.add((site, rule, device), Alert.model_validate_json(message.payload))

        async with running(listen()):
            yield events


def prepare(fleet: Fleet, cases: list[Case]) -> None:
    """Each site's preconditions, set in the physics before any client connects."""
    sites = {c.scenario: c.site for c in cases}
    fleet.shelters[sites["seal_leak"]].apply_write("door", "command", "close")
    fleet.step(DOOR_TRAVEL_S + 0.1)
    fleet.step(10.0)  # the seal inflates (tau 1 s)
    fleet.shelters[sites["water_leak"]].water.tank_level = 31.0
    for shelter in fleet.shelters.values():
        shelter.env.humidity = 60.0
    door = fleet.shelters[sites["seal_leak"]].door
    assert door.sealed and door.seal_pressure > 49, door


async def run_case(fleet: Fleet, events: Events, case: Case) -> tuple[float, float]:
    """Fault, wait for the raise, repair, wait for the clear: (raise after s, clear after s)."""
    key = (case.site, case.rule, case.device)
    started = time.monotonic()
    await fleet.fault(case.site, case.scenario, **case.options)
    if case.then is not None:
        fleet.shelters[case.site].apply_write(*case.then)
    await wait_until(
        lambda: key in events.raised,
        case.raise_within_s,
        f"{case.scenario}: {case.rule} on {case.site}/{case.device} raised within "
        f"{case.raise_within_s} s ({case.why})",
    )
    raise_s = events.raised[key][0][1] - started
    repaired = time.monotonic()
    await fleet.repair(case.site, case.scenario)
    await wait_until(
        lambda: key in events.cleared,
        case.clear_within_s,
        f"{case.scenario}: {case.rule} on {case.site}/{case.device} cleared within "
        f"{case.clear_within_s} s of the repair ({case.why})",
    )
    return raise_s, events.cleared[key][0][1] - repaired


def test_every_scenario_has_a_case() -> None:
    assert {c.scenario for c in CASES} == set(SCENARIOS)
    assert len({c.site for c in CASES}) == len(CASES)


def test_the_fast_pack_is_the_default_pack_with_time_compressed(tmp_path: Path) -> None:
    doc = fast_rules(tmp_path / "rules.yaml", FACTOR, PER_RULE)
    by_name = {r["name"]: r for r in doc["rules"]}
    assert by_name["overpressure_low"]["for_s"] == 1.0
    assert by_name["device_silent"]["interval_s"] == 1.0
    assert by_name["filter_clogging"]["sample_every_s"] == 1.0
    assert {c.rule for c in CASES} <= set(by_name)


async def test_each_fault_scenario_raises_exactly_its_alert_and_clears_after_the_repair(
    mosquitto: MosquittoServer, sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    mqtt = mqtt_settings(mosquitto.port, prefix=f"t{uuid.uuid4().hex[:6]}/v1")
    rules = tmp_path / "rules.yaml"
    fast_rules(rules, FACTOR, PER_RULE)
    collector = collector_for(
        sqlite_store,
        mqtt,
        client_id=f"c-{uuid.uuid4().hex[:8]}",
        alerts={
            "enabled": True,
            "rules_path": str(rules),
            "state_path": str(tmp_path / "alert-state.db"),
            "repeat_critical_s": 900 / FACTOR,
            "tick_s": 0.1,
        },
    )
    sirens = sum(1 for c in CASES if c.site.startswith("siren-"))
    fleet = Fleet(FleetSpec(shelters=len(CASES) - sirens, sirens=sirens, tick_s=0.2, seed=11))
    assert sorted(fleet.sites) == sorted(c.site for c in CASES)
    prepare(fleet, CASES)

    async with fleet, recording(mqtt) as events, running(collector.run()):
        await wait_until(collector.subscribed.is_set, 10, "the collector subscribed")
        gateways = gateways_for(
            fleet, mqtt, interval_s=POLL_S, outbox_dir=tmp_path, snapshot_interval_s=SNAPSHOT_S
        )
        async with running(*(g.run() for g in gateways)):
            await wait_until(
                lambda: all(p.online for g in gateways for p in g.pollers),
                15,
                "every device polled by its gateway",
            )
            await wait_until(
                lambda: len(events.devices) == len(fleet.devices), 15, "data from every device"
            )
            await asyncio.sleep(BASELINE_S)
            assert events.raised == {}, f"alerts before any fault: {events.raised}"

            results = await asyncio.gather(
                *(run_case(fleet, events, c) for c in CASES), return_exceptions=True
            )
            await asyncio.sleep(SETTLE_S)
            assert collector.alerts is not None
            active = (await collector.alerts.engine()).active()
            # Checked here: what the gateways' and the collector's shutdown cause is no test.
            failures = check(events, results)

    assert not failures, "\n".join(failures)
    assert active == {}, f"alerts still active in the engine: {active}"


def check(events: Events, results: list[tuple[float, float] | BaseException]) -> list[str]:
    """What went wrong, per scenario; empty when every case held."""
    failures: list[str] = []
    for case, result in zip(CASES, results, strict=True):
        if isinstance(result, BaseException):
            failures.append(f"{case.scenario}: {result}")
            continue
        raise_s, clear_s = result
        if raise_s > case.raise_within_s or clear_s > case.clear_within_s:
            failures.append(
                f"{case.scenario}: raised after {raise_s:.1f} s (bound {case.raise_within_s} s), "
                f"cleared {clear_s:.1f} s after the repair (bound {case.clear_within_s} s)"
            )
        key = (case.site, case.rule, case.device)
        seen = events.raised_at(case.site)
        if seen != {(case.rule, case.device): 1}:
            failures.append(
                f"{case.scenario} at {case.site}: expected one {case.rule} raise on "
                f"{case.device} and nothing else, got {seen}"
            )
        clears = events.cleared.get(key, [])
        if len(clears) != 1:
            failures.append(f"{case.scenario}: {len(clears)} clears of {case.rule}")
    return failures
