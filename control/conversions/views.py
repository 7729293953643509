"""Order rows as the API shows them, whole or as far as a caller's area reaches."""

from __future__ import annotations

from control.areas.scope import Scope
from control.conversions.execution import StepState
from control.conversions.models import (
    EventPublic,
    OrderPublic,
    PlanPublic,
    StepPublic,
    TargetPublic,
)
from control.conversions.plans import LoadedPlan, Plan, topological
from control.db import ConversionOrder, ConversionTarget
from control.settings import ConversionSettings

__all__ = ["order_public", "plan_public", "scoped"]


def plan_public(loaded: LoadedPlan) -> PlanPublic:
    plan = loaded.plan
    return PlanPublic(
        name=plan.name,
        version=plan.version,
        hash=loaded.hash,
        source=loaded.source,
        direction=plan.direction,
        default=plan.default,
        sites=plan.sites,
        shelter_type=plan.shelter_type,
        title_zh=plan.title_zh,
        title_en=plan.title_en,
        steps=topological(plan.steps),
    )


def _target(target: ConversionTarget) -> TargetPublic:
    plan = Plan.model_validate_json(target.plan_json)
    by_id = {s.id: s for s in plan.steps}
    steps = []
    for row in target.steps:
        step = by_id[row.step]
        took = row.done_ms - row.started_ms if row.done_ms and row.started_ms else None
        steps.append(
            StepPublic(
                step=row.step,
                kind=row.kind,
                title_zh=step.title_zh,
                title_en=step.title_en,
                after=step.after,
                checks=[c.describe() for c in step.check],
                state=row.state,
                detail=row.detail,
                started_ms=row.started_ms,
                done_ms=row.done_ms,
                took_ms=took,
                confirmed_by=row.confirmed_by,
                note=row.note,
                attempts=row.attempts,
                regressions=row.regressions,
                command_id=row.command_id,
            )
        )
    return TargetPublic(
        site=target.site,
        gateway=target.gateway,
        plan=target.plan_name,
        plan_version=target.plan_version,
        plan_hash=target.plan_hash,
        posture_before=target.posture_before,
        finished_ms=target.finished_ms,
        steps=steps,
    )


def order_public(
    order: ConversionOrder, cfg: ConversionSettings, *, with_events: bool = True
) -> OrderPublic:
    targets = [_target(t) for t in order.targets]
    steps = [s for t in targets for s in t.steps]
    level = cfg.levels.get(order.level)
    return OrderPublic(
        id=order.id,
        direction=order.direction,
        kind=order.kind,  # type: ignore[arg-type]
        level=order.level,
        level_title=f"{level.title_zh} / {level.title_en}" if level else order.level,
        exercise=order.exercise,
        area=order.area,
        state=order.state,
        detail=order.detail,
        reason=order.reason,
        requested_by=order.requested_by,
        requested_ms=order.requested_ms,
        approve_by_ms=order.approve_by_ms,
        approved_by=order.approved_by,
        approved_ms=order.approved_ms,
        started_ms=order.started_ms,
        deadline_s=order.deadline_s,
        deadline_ms=order.deadline_ms,
        warn_ms=order.warn_ms,
        warned=order.warned,
        deadline_missed=order.missed,
        finished_ms=order.finished_ms,
        cancelled_by=order.cancelled_by,
        steps_total=len(steps),
        steps_done=sum(1 for s in steps if s.state == StepState.DONE),
        steps_regressed=sum(1 for s in steps if s.state == StepState.REGRESSED),
        targets=targets,
        events=[
            EventPublic(
                ts_ms=e.ts_ms,
                actor=e.actor,
                event=e.event,
                site=e.site,
                step=e.step,
                detail=e.detail,
            )
            for e in order.events
        ]
        if with_events
        else [],
    )


def scoped(order: OrderPublic, scope: Scope | None) -> OrderPublic:
    """The order as ``scope`` may see it: the shelters in scope, their steps, and their
    events with the order's own. An order over two counties is visible to each county for its
    own shelters, and a child never sees its siblings' shelters, steps or notes; the order's
    area is a common parent, so showing it leaks nothing."""
    if scope is None or scope.unlimited:
        return order
    targets = [t for t in order.targets if scope.has_site(t.site)]
    if len(targets) == len(order.targets):
        return order
    steps = [s for t in targets for s in t.steps]
    return order.model_copy(
        update={
            "targets": targets,
            "steps_total": len(steps),
            "steps_done": sum(1 for s in steps if s.state == StepState.DONE),
            "steps_regressed": sum(1 for s in steps if s.state == StepState.REGRESSED),
            "events": [e for e in order.events if not e.site or scope.has_site(e.site)],
        }
    )
