"""Advancing an order one sweep at a time: pure of IO, run under the order's row lock.

``advance`` reads the order's rows and the sites' readings and changes the rows; what must
happen outside the transaction (writes to send, alerts to raise or clear, postures to set)
comes back as ``Actions``. Steps run in dependency order; a step starts when every step it
depends on is done (a regressed dependency holds it back again).

Step states: ``waiting`` (dependencies open) → ``active`` → ``done``; a done step whose check
must hold and that telemetry contradicts becomes ``regressed`` until it holds again;
``failed`` is an automated step whose writes ran out of attempts; ``cancelled`` ends the rest
when the order is cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from control.conversions.checks import Readings, Verdict, evaluate, interlock
from control.conversions.plans import Plan, Step, WriteCommand, topological
from control.db import ConversionEvent, ConversionOrder, ConversionStep, ConversionTarget
from control.settings import ConversionSettings

__all__ = [
    "FINAL_ORDER_STATES",
    "Actions",
    "AlertChange",
    "OrderState",
    "Send",
    "StepState",
    "add_event",
    "advance",
    "posture_when_done",
]

# A command's final states that mean it did not happen (the write may be tried again).
_COMMAND_FAILED = frozenset({"rejected", "failed", "expired", "timed_out", "cancelled"})


class OrderState(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class StepState(StrEnum):
    WAITING = "waiting"
    ACTIVE = "active"
    DONE = "done"
    REGRESSED = "regressed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_ORDER_STATES = frozenset({OrderState.COMPLETED, OrderState.CANCELLED, OrderState.EXPIRED})


@dataclass(frozen=True, slots=True)
class Send:
    step_row: int
    site: str
    gateway: str
    step: str
    command: WriteCommand
    attempt: int


@dataclass(frozen=True, slots=True)
class AlertChange:
    site: str
    step: str
    device: str
    point: str
    active: bool
    message: str


@dataclass
class Actions:
    sends: list[Send] = field(default_factory=list)
    alerts: list[AlertChange] = field(default_factory=list)
    # (site, posture) to declare, in order
    postures: list[tuple[str, str]] = field(default_factory=list)
    # (event, site, step, detail) worth an audit row (the service's own verdicts)
    audits: list[tuple[str, str, str, str]] = field(default_factory=list)


def add_event(
    order: ConversionOrder,
    now: int,
    actor: str,
    event: str,
    detail: str,
    site: str = "",
    step: str = "",
) -> None:
    order.events.append(
        ConversionEvent(
            ts_ms=now, actor=actor[:128], event=event, site=site, step=step, detail=detail
        )
    )


def posture_when_done(direction: str) -> str:
    return "wartime" if direction == "to_wartime" else "peacetime"


def advance(
    order: ConversionOrder,
    readings: Mapping[str, Readings],
    command_states: Mapping[str, tuple[str, str]],
    now: int,
    cfg: ConversionSettings,
) -> Actions:
    """One sweep of a running order. ``command_states`` maps a command id to its record's
    (state, detail)."""
    actions = Actions()
    if order.state != OrderState.RUNNING:
        return actions
    _countdown(order, now, actions)
    for target in order.targets:
        site_readings = readings.get(target.site)
        if site_readings is None:
            continue  # no telemetry this sweep: nothing can be verified or contradicted
        _advance_target(order, target, site_readings, command_states, now, cfg, actions)
    if all(t.finished_ms is not None for t in order.targets):
        order.state = OrderState.COMPLETED.value
        order.finished_ms = now
        order.missed = order.deadline_ms is not None and now > order.deadline_ms
        met = "missed" if order.missed else "met"
        order.detail = f"completed; deadline {met}"
        add_event(order, now, "control-service", "completed", order.detail)
        actions.audits.append(("completed", "", "", order.detail))
    order.updated_ms = now
    return actions


def _countdown(order: ConversionOrder, now: int, actions: Actions) -> None:
    if order.warn_ms is not None and not order.warned and now >= order.warn_ms:
        order.warned = True
        left = max(0, (order.deadline_ms or now) - now) // 1000
        detail = f"{left} s left before the deadline and steps are still open"
        add_event(order, now, "control-service", "deadline_warning", detail)
        actions.audits.append(("deadline_warning", "", "", detail))
    if order.deadline_ms is not None and not order.missed and now > order.deadline_ms:
        order.missed = True
        detail = "the deadline passed with steps still open; the order goes on"
        add_event(order, now, "control-service", "deadline_missed", detail)
        actions.audits.append(("deadline_missed", "", "", detail))


def _advance_target(
    order: ConversionOrder,
    target: ConversionTarget,
    readings: Readings,
    command_states: Mapping[str, tuple[str, str]],
    now: int,
    cfg: ConversionSettings,
    actions: Actions,
) -> None:
    plan = Plan.model_validate_json(target.plan_json)
    rows = {r.step: r for r in target.steps}
    for step in topological(plan.steps):
        row = rows[step.id]
        _advance_step(order, target, step, row, rows, readings, command_states, now, cfg, actions)
    all_done = all(r.state == StepState.DONE for r in target.steps)
    if all_done and target.finished_ms is None:
        target.finished_ms = now
        posture = posture_when_done(order.direction)
        add_event(
            order,
            now,
            "control-service",
            "shelter_done",
            f"every step done; {posture}",
            target.site,
        )
        actions.postures.append((target.site, posture))


def _advance_step(
    order: ConversionOrder,
    target: ConversionTarget,
    step: Step,
    row: ConversionStep,
    rows: Mapping[str, ConversionStep],
    readings: Readings,
    command_states: Mapping[str, tuple[str, str]],
    now: int,
    cfg: ConversionSettings,
    actions: Actions,
) -> None:
    site = target.site
    if row.state == StepState.WAITING:
        if not all(rows[d].state == StepState.DONE for d in step.after):
            return
        row.state = StepState.ACTIVE.value
        row.started_ms = now
        row.detail = "waiting for a person to confirm" if step.kind == "manual" else ""
        add_event(order, now, "control-service", "step_started", step.kind, site, step.id)
    if row.state == StepState.ACTIVE:
        if step.kind == "manual":
            return
        verdict = evaluate(step.check, readings)
        if verdict.holds:
            row.state = StepState.DONE.value
            row.done_ms = now
            row.confirmed_by = "telemetry"
            row.detail = verdict.detail
            add_event(order, now, "telemetry", "step_verified", verdict.detail, site, step.id)
            actions.audits.append(("step_verified", site, step.id, verdict.detail))
            return
        if step.kind == "automated":
            _drive(order, target, step, row, verdict, readings, command_states, now, cfg, actions)
        else:
            row.detail = f"waiting for telemetry: {verdict.detail}"
        row.updated_ms = now
        return
    if step.check and step.hold and row.state in (StepState.DONE, StepState.REGRESSED):
        _watch(order, step, row, site, evaluate(step.check, readings), now, actions)


def _watch(
    order: ConversionOrder,
    step: Step,
    row: ConversionStep,
    site: str,
    verdict: Verdict,
    now: int,
    actions: Actions,
) -> None:
    """A verified step stays verified only while telemetry agrees."""
    first = step.check[0]
    if row.state == StepState.DONE and verdict.holds is False:
        row.state = StepState.REGRESSED.value
        row.regressions += 1
        row.detail = f"unverified: {verdict.detail}"
        row.updated_ms = now
        add_event(order, now, "telemetry", "step_regressed", verdict.detail, site, step.id)
        actions.audits.append(("step_regressed", site, step.id, verdict.detail))
        message = (
            f"conversion {order.id}: '{step.title_en}' was verified and telemetry now "
            f"contradicts it ({verdict.detail})"
        )
        actions.alerts.append(AlertChange(site, step.id, first.device, first.point, True, message))
    elif row.state == StepState.REGRESSED and verdict.holds:
        row.state = StepState.DONE.value
        row.detail = f"verified again: {verdict.detail}"
        row.updated_ms = now
        add_event(order, now, "telemetry", "step_reverified", verdict.detail, site, step.id)
        actions.audits.append(("step_reverified", site, step.id, verdict.detail))
        message = f"conversion {order.id}: '{step.title_en}' holds again ({verdict.detail})"
        actions.alerts.append(AlertChange(site, step.id, first.device, first.point, False, message))


def _drive(
    order: ConversionOrder,
    target: ConversionTarget,
    step: Step,
    row: ConversionStep,
    verdict: Verdict,
    readings: Readings,
    command_states: Mapping[str, tuple[str, str]],
    now: int,
    cfg: ConversionSettings,
    actions: Actions,
) -> None:
    """Write the step's command, or wait for telemetry to show it, or write it again."""
    assert step.command is not None
    failed = ""
    if row.command_id is not None:
        state, detail = command_states.get(row.command_id, ("", ""))
        if state in _COMMAND_FAILED:
            failed = f"write {state}: {detail}" if detail else f"write {state}"
    waited = row.commanded_ms is not None and now - row.commanded_ms >= cfg.command_ttl_s * 1000
    # Waited too long covers a write lost between this transaction and the command service.
    due = row.attempts == 0 or bool(failed) or waited
    if not due:
        row.detail = f"written; waiting for telemetry: {verdict.detail}"
        return
    if row.attempts >= cfg.command_attempts:
        row.state = StepState.FAILED.value
        row.detail = (
            f"not confirmed after {row.attempts} writes ({failed or verdict.detail}); check the "
            "device on site, then cancel and order again"
        )
        add_event(order, now, "control-service", "step_failed", row.detail, target.site, step.id)
        actions.audits.append(("step_failed", target.site, step.id, row.detail))
        return
    reason = interlock(step.command, readings)
    if reason is not None:
        detail = f"refused by interlock: {reason}"
        if row.detail != detail:
            add_event(order, now, "control-service", "step_refused", reason, target.site, step.id)
            actions.audits.append(("step_refused", target.site, step.id, reason))
        row.detail = detail
        return
    row.attempts += 1
    row.commanded_ms = now
    row.command_id = None  # set once the command service has recorded it
    row.detail = f"writing {step.command.point}={step.command.value} (attempt {row.attempts})"
    if failed:
        row.detail += f"; the last {failed}"
    actions.sends.append(
        Send(row.id, target.site, target.gateway, step.id, step.command, row.attempts)
    )
