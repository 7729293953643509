"""advance(): dependency order, writes, verdicts, regressions and the countdown, on in-memory
rows. A drill and a real order given the same readings make the same decisions."""

from __future__ import annotations

from control.conversions.checks import Readings, readings_of
from control.conversions.execution import advance
from control.conversions.plans import load_catalogue
from control.db import ConversionOrder, ConversionStep, ConversionTarget
from control.settings import ConversionSettings
from shelterwatch.store import LatestValue

CFG = ConversionSettings()
T0 = 1_000_000


def _order(kind: str) -> ConversionOrder:
    loaded = load_catalogue().for_site("shelter-01", "to_wartime")
    plan = loaded.plan
    return ConversionOrder(
        id=f"conv-{kind:0>12}",
        direction="to_wartime",
        kind=kind,
        level="emergency",
        exercise="drill" if kind == "drill" else None,
        state="running",
        detail="",
        reason="test",
        requested_by="duty_officer",
        requested_ms=T0,
        started_ms=T0,
        deadline_s=100.0,
        deadline_ms=T0 + 100_000,
        warn_ms=T0 + 75_000,
        warned=False,
        missed=False,
        updated_ms=T0,
        targets=[
            ConversionTarget(
                site="shelter-01",
                gateway="gw-shelter-01",
                plan_name=plan.name,
                plan_version=plan.version,
                plan_hash=loaded.hash,
                plan_json=plan.model_dump_json(),
                posture_before="peacetime",
                steps=[
                    ConversionStep(
                        id=i,
                        step=s.id,
                        position=i,
                        kind=s.kind,
                        state="waiting",
                        detail="",
                        note="",
                        attempts=0,
                        regressions=0,
                        updated_ms=T0,
                    )
                    for i, s in enumerate(plan.steps)
                ],
            )
        ],
    )


def _readings(now: int, **values: object) -> dict[str, Readings]:
    base: dict[tuple[str, str, str], object] = {
        ("door", "door", "closed"): False,
        ("door", "door", "seal_pressure"): 0.0,
        ("vent", "ventilation", "mode"): "clean",
        ("vent", "ventilation", "overpressure"): 1.0,
        ("water", "water", "tank_level"): 70.0,
    }
    for key, value in values.items():
        base[next(k for k in base if k[2] == key)] = value
    rows = [LatestValue(d, k, p, v, now) for (d, k, p), v in base.items()]  # type: ignore[arg-type]
    return {"shelter-01": readings_of(rows, now, 60)}


def _states(order: ConversionOrder) -> dict[str, str]:
    return {r.step: r.state for r in order.targets[0].steps}


def _confirm_manual(order: ConversionOrder) -> None:
    for row in order.targets[0].steps:
        if row.kind == "manual" and row.state == "active":
            row.state, row.done_ms, row.confirmed_by = "done", T0, "duty_officer"


def test_drill_and_real_make_the_same_decisions() -> None:
    decisions = []
    for kind in ("drill", "real"):
        order = _order(kind)
        trace = []
        now = T0
        for readings in (
            {},
            {"closed": True, "seal_pressure": 45.0},
            {"closed": True, "seal_pressure": 45.0, "mode": "isolated"},
            {"closed": True, "seal_pressure": 45.0, "mode": "filtered", "overpressure": 35.0},
        ):
            now += 1000
            actions = advance(order, _readings(now, **readings), {}, now, CFG)
            _confirm_manual(order)
            trace.append((_states(order), [(s.step, s.command.value) for s in actions.sends]))
        decisions.append(trace)
    assert decisions[0] == decisions[1]


def test_steps_run_in_dependency_order_and_the_interlock_holds_back_filtered() -> None:
    order = _order("drill")
    actions = advance(order, _readings(T0 + 1), {}, T0 + 1, CFG)
    states = _states(order)
    assert (
        states["install-blocking-plates"] == "active"
        and states["close-protective-door"] == "waiting"
    )
    assert actions.sends == []
    _confirm_manual(order)
    actions = advance(order, _readings(T0 + 2), {}, T0 + 2, CFG)
    assert sorted(s.step for s in actions.sends) == ["close-protective-door", "fill-water-tanks"]
    # The door reads closed and sealed; isolated comes next, then filtered.
    actions = advance(order, _readings(T0 + 3, closed=True, seal_pressure=45.0), {}, T0 + 3, CFG)
    assert [s.command.value for s in actions.sends] == ["isolated"]


def test_a_contradicted_step_regresses_raises_and_recovers() -> None:
    order = _order("drill")
    advance(order, _readings(T0), {}, T0, CFG)
    _confirm_manual(order)
    advance(order, _readings(T0 + 1), {}, T0 + 1, CFG)
    advance(order, _readings(T0 + 2, closed=True), {}, T0 + 2, CFG)
    assert _states(order)["close-protective-door"] == "done"
    actions = advance(order, _readings(T0 + 3, closed=False), {}, T0 + 3, CFG)
    assert _states(order)["close-protective-door"] == "regressed"
    assert [(a.step, a.active) for a in actions.alerts] == [("close-protective-door", True)]
    actions = advance(order, _readings(T0 + 4, closed=True), {}, T0 + 4, CFG)
    assert _states(order)["close-protective-door"] == "done"
    assert [(a.step, a.active) for a in actions.alerts] == [("close-protective-door", False)]
    row = next(r for r in order.targets[0].steps if r.step == "close-protective-door")
    assert row.regressions == 1


def test_the_countdown_warns_once_then_marks_the_deadline_missed() -> None:
    order = _order("real")
    advance(order, {}, {}, T0 + 74_000, CFG)
    assert not order.warned
    advance(order, {}, {}, T0 + 76_000, CFG)
    advance(order, {}, {}, T0 + 77_000, CFG)
    assert order.warned and [e.event for e in order.events] == ["deadline_warning"]
    advance(order, {}, {}, T0 + 101_000, CFG)
    assert order.missed and order.state == "running"
