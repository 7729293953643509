"""The conversion service: orders from request to report. Lifespan state key ``conversions``.

``request`` checks the level, the plans and the shelters, audits the request, and records
the order with one row per shelter and step. A drill starts at once; a real order waits for
a commander other than the requester to ``approve`` it within
``conversions.approval_window_s``. The sweep (sweep.py) then advances every running order:
steps in dependency order, writes through the command service, verdicts from telemetry.
People confirm manual steps with a note (``confirm``). Drill and real orders differ only in
kind, approval and labelling: they run the same plans, checks and interlocks.

Each call may take the caller's ``Scope`` (None: everything, for the service's own callers).
An order is placed by its shelters: one is visible to whoever has any of its shelters in
scope, shown only as far as that scope reaches (views.scoped), and an order with none in scope
is not found, exactly like an unknown id. Requesting needs every shelter (and every named
gateway) in scope. Approving, and cancelling, act on every shelter of the order, so they need
a scope that covers them all: the order's area, a common parent of its shelters, which the
refusal names (docs/conversion.md, "Areas and scope").
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import uuid
from collections.abc import Mapping
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession

from control.areas.scope import Scope
from control.auth import Permission, Role, allows, two_person_rule
from control.commands import CommandService
from control.conversions import records
from control.conversions.errors import Conflict, InvalidInput, NotAllowed, NotFound
from control.conversions.execution import (
    FINAL_ORDER_STATES,
    OrderState,
    StepState,
    add_event,
)
from control.conversions.models import OrderPublic, OrderRequest, PlanPublic
from control.conversions.plans import LoadedPlan, Plan, load_catalogue
from control.conversions.postures import PosturePublisher
from control.conversions.reports import ConversionReport, report_of
from control.conversions.sweep import Sweeper
from control.conversions.trail import audit, audit_first
from control.conversions.views import order_public, plan_public, scoped
from control.db import ConversionOrder, ConversionStep, ConversionTarget, Database
from control.exercises.labels import check_label
from control.settings import ControlSettings
from shelterwatch.store import TimeSeriesStore

__all__ = ["ConversionService"]

log = logging.getLogger(__name__)


class _State(enum.Enum):
    NEW = 1
    OPEN = 2
    CLOSED = 3


class ConversionService:
    def __init__(
        self,
        settings: ControlSettings,
        db: Database,
        commands: CommandService,
        store: TimeSeriesStore,
        *,
        sweep_interval_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.cfg = settings.conversions
        # Loaded (and checked) now: a bad plan stops the start, not the first conversion.
        self.catalogue = load_catalogue(self.cfg.plans_dir)
        self.publisher = PosturePublisher(db, settings.mqtt.prefix, commands.client_id)
        commands.add_session_task("posture-publisher", self.publisher.run)
        self.sweeper = Sweeper(
            settings,
            db,
            commands,
            store,
            self.publisher.wake,
            interval_s=sweep_interval_s or self.cfg.sweep_interval_s,
        )
        self._state = _State.NEW
        self._runner: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        if self._state is not _State.NEW:
            raise RuntimeError("a ConversionService opens once")
        self._state = _State.OPEN
        self._runner = asyncio.create_task(self.sweeper.run(), name="conversion-sweep")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._state = _State.CLOSED
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    # -- plans ----------------------------------------------------------------------------------

    def plans(self) -> list[PlanPublic]:
        return [plan_public(p) for _n, p in sorted(self.catalogue.plans.items())]

    def plan(self, name: str) -> PlanPublic:
        loaded = self.catalogue.get(name)
        if loaded is None:
            raise NotFound(f"no conversion plan {name!r}: GET /api/v1/conversion-plans lists them")
        return plan_public(loaded)

    # -- orders ---------------------------------------------------------------------------------

    async def request(
        self, body: OrderRequest, *, actor: str, scope: Scope | None = None
    ) -> OrderPublic:
        """Record an order; a drill starts at once, a real order waits for approval."""
        if not body.reason.strip():
            raise InvalidInput(
                "give a reason: the approver, the audit trail and the report show it"
            )
        level = self.cfg.levels.get(body.level)
        if level is None:
            known = ", ".join(sorted(self.cfg.levels))
            raise InvalidInput(
                f"unknown level {body.level!r}; conversions.levels has {known}", "level"
            )
        if body.kind == "real" and body.exercise is not None:
            raise InvalidInput("a real order is not an exercise: leave exercise out", "exercise")
        exercise = (body.exercise or "drill") if body.kind == "drill" else None
        sites = [s.site for s in body.shelters]
        if len(set(sites)) != len(sites):
            raise InvalidInput("each shelter once: a site is named twice", "shelters")
        self._in_scope(body, scope)
        # An exercise's label only on its drill orders, inside its areas, while it runs.
        drill = body.kind == "drill"
        await check_label(self.db, exercise, drill=drill, sites=sites, refuse=Conflict)
        area = scope.needed_area(sites) if scope is not None and not scope.tree.empty else None
        plans = self._plans_for(sites, body.direction, body.plan)
        postures = await records.postures(self.db)
        await self._no_open_order(sites)
        for site in sites:
            before = postures.get(site, "peacetime")
            done = "wartime" if body.direction == "to_wartime" else "peacetime"
            if before == done:
                raise Conflict(f"{site} is in {before} posture already; nothing to convert")
        order_id = f"conv-{uuid.uuid4().hex[:12]}"
        await audit_first(
            self.db,
            actor,
            "conversion.request",
            order_id,
            {
                "direction": body.direction,
                "kind": body.kind,
                "level": body.level,
                "sites": sites,
                "plans": {s: f"{p.plan.name} v{p.plan.version} {p.hash}" for s, p in plans.items()},
                "reason": body.reason,
                "exercise": exercise,
                # Only once areas exist, so rows written before them keep their shape.
                **({"area": area} if area is not None else {}),
            },
        )
        now = records.now_ms()
        real = body.kind == "real"
        order = ConversionOrder(
            id=order_id,
            direction=body.direction,
            kind=body.kind,
            level=body.level,
            exercise=exercise,
            area=area,
            state=(OrderState.PENDING_APPROVAL if real else OrderState.RUNNING).value,
            detail="",
            reason=body.reason,
            requested_by=actor,
            requested_ms=now,
            approve_by_ms=now + int(self.cfg.approval_window_s * 1000) if real else None,
            decision_comment="",
            deadline_s=level.deadline_s,
            warned=False,
            missed=False,
            updated_ms=now,
            targets=[
                self._target(ref.site, ref.gateway, plans[ref.site], postures, now)
                for ref in body.shelters
            ],
        )
        add_event(order, now, actor, "requested", f"{body.kind} {body.direction}: {body.reason}")
        async with self.db.session() as s, s.begin():
            s.add(order)
            if real:
                order.detail = f"waiting for a commander other than {actor} to approve"
            else:
                await self._start(s, order, now, actor)
        log.info(
            "conversions: %s requested by %s: %s %s of %s at level %s (%s)",
            order_id,
            actor,
            body.kind,
            body.direction,
            ", ".join(sites),
            body.level,
            body.reason,
        )
        self.publisher.wake.set()
        return await self.get(order_id, scope)

    def _in_scope(self, body: OrderRequest, scope: Scope | None) -> None:
        """Every shelter, and the gateway that will drive it, must lie in the caller's area.
        One outside answers as unknown: for a scoped caller, a site or gateway the tree does
        not place belongs to the root, so "not yours" and "does not exist" are one answer."""
        if scope is None or scope.unlimited:
            return
        for ref in body.shelters:
            if not scope.has_site(ref.site):
                raise NotFound(
                    f"no shelter {ref.site!r} in your area; GET /api/v1/areas lists your sites"
                )
            # A gateway named in the order must be one of the area's; one left to the naming
            # pattern is the site's own, unless the tree places a gateway of that name
            # elsewhere (the writes would then reach another area's devices).
            gateway = ref.gateway or self.cfg.gateway_pattern.replace("{site}", ref.site)
            placed = scope.tree.site_of_gateway(gateway) is not None
            if (ref.gateway is not None or placed) and not scope.has_gateway(gateway):
                raise NotFound(
                    f"no gateway {gateway!r} in your area; GET /api/v1/areas lists your sites "
                    "and their gateways"
                )

    def _plans_for(
        self, sites: list[str], direction: str, name: str | None
    ) -> dict[str, LoadedPlan]:
        if name is not None:
            loaded = self.catalogue.get(name)
            if loaded is None:
                raise NotFound(f"no conversion plan {name!r}: GET /api/v1/conversion-plans")
            if loaded.plan.direction != direction:
                raise InvalidInput(
                    f"plan {name} is {loaded.plan.direction}, not {direction}", "plan"
                )
            return dict.fromkeys(sites, loaded)
        return {s: self.catalogue.for_site(s, direction) for s in sites}  # type: ignore[arg-type]

    async def _no_open_order(self, sites: list[str]) -> None:
        for state in (OrderState.RUNNING, OrderState.PENDING_APPROVAL):
            for other in await records.list_orders(self.db, state=state.value, limit=1000):
                busy = sorted({t.site for t in other.targets} & set(sites))
                if busy:
                    raise Conflict(
                        f"{', '.join(busy)} already in order {other.id} ({other.state}); "
                        "cancel it first or wait for it to end"
                    )

    def _target(
        self,
        site: str,
        gateway: str | None,
        loaded: LoadedPlan,
        postures: Mapping[str, str],
        now: int,
    ) -> ConversionTarget:
        plan = loaded.plan
        return ConversionTarget(
            site=site,
            gateway=gateway or self.cfg.gateway_pattern.replace("{site}", site),
            plan_name=plan.name,
            plan_version=plan.version,
            plan_hash=loaded.hash,
            plan_json=plan.model_dump_json(),
            posture_before=postures.get(site, "peacetime"),
            steps=[
                ConversionStep(
                    step=step.id,
                    position=i,
                    kind=step.kind,
                    state=StepState.WAITING.value,
                    detail="",
                    note="",
                    attempts=0,
                    regressions=0,
                    updated_ms=now,
                )
                for i, step in enumerate(plan.steps)
            ],
        )

    async def _start(self, s: AsyncSession, order: ConversionOrder, now: int, actor: str) -> None:
        order.state = OrderState.RUNNING.value
        order.started_ms = now
        order.deadline_ms = now + int(order.deadline_s * 1000)
        order.warn_ms = now + int(order.deadline_s * 1000 * self.cfg.warn_fraction)
        order.detail = "running"
        add_event(order, now, actor, "started", f"deadline in {order.deadline_s:g} s")
        for target in order.targets:
            await records.set_posture(
                s,
                target.site,
                "converting",
                order_id=order.id,
                kind=order.kind,
                exercise=order.exercise,
                now=now,
            )

    async def approve(
        self, order_id: str, *, actor: str, comment: str = "", scope: Scope | None = None
    ) -> OrderPublic:
        """A second person's yes to a real order: it starts now. Conflict (409) for your own
        request, one not waiting for approval, or one whose window ran out; NotAllowed (403)
        for an approver whose area does not cover every shelter of the order."""
        async with records.locked(self.db, order_id) as (s, order):
            _visible(order, scope, f"no conversion order {order_id!r}")
            _covered(order, scope, "approving")
            now = records.now_ms()
            if order.state != OrderState.PENDING_APPROVAL:
                raise Conflict(f"{order_id} is {order.state}, not waiting for approval")
            if order.approve_by_ms is not None and order.approve_by_ms < now:
                raise Conflict(f"{order_id}: its approval window has run out; request it again")
            if not two_person_rule(order.requested_by, actor):
                raise Conflict(
                    f"you requested {order_id}; the two-person rule needs another commander"
                )
            order.approved_by = actor
            order.approved_ms = now
            order.decision_comment = comment
            add_event(order, now, actor, "approved", comment)
            await self._start(s, order, now, actor)
        await audit(
            self.db, actor, "conversion.approve", order_id, {"comment": comment}, "approved"
        )
        log.warning("conversions: real order %s approved by %s; running", order_id, actor)
        self.publisher.wake.set()
        return await self.get(order_id, scope)

    async def confirm(
        self,
        order_id: str,
        *,
        site: str,
        step: str,
        note: str,
        actor: str,
        scope: Scope | None = None,
    ) -> OrderPublic:
        """A person confirms a manual step with a note."""
        if not note.strip():
            raise InvalidInput(
                "a confirmation needs a note: what was done, and how it was checked", "note"
            )
        async with records.locked(self.db, order_id) as (_s, order):
            _visible(order, scope, f"no conversion order {order_id!r}")
            now = records.now_ms()
            if order.state != OrderState.RUNNING:
                raise Conflict(f"{order_id} is {order.state}: only a running order takes steps")
            target = next((t for t in order.targets if t.site == site), None)
            # A shelter of the order outside the caller's area is one it does not have.
            if target is None or (scope is not None and not scope.has_site(site)):
                raise NotFound(f"{order_id} has no shelter {site!r}")
            row = next((r for r in target.steps if r.step == step), None)
            if row is None:
                raise NotFound(f"the plan of {site} in {order_id} has no step {step!r}")
            if row.kind != "manual":
                raise Conflict(f"{step} is {row.kind}: telemetry verifies it, not a person")
            if row.state != StepState.ACTIVE:
                raise Conflict(f"{step} at {site} is {row.state}, not waiting for a confirmation")
            row.state = StepState.DONE.value
            row.done_ms = now
            row.confirmed_by = actor
            row.note = note
            row.detail = f"confirmed by {actor}"
            row.updated_ms = now
            order.updated_ms = now
            add_event(order, now, actor, "step_confirmed", note, site, step)
        await audit(
            self.db,
            actor,
            "conversion.confirm",
            order_id,
            {"site": site, "step": step, "note": note},
            "done",
        )
        self.sweeper.wake.set()
        return await self.get(order_id, scope)

    async def cancel(
        self,
        order_id: str,
        *,
        actor: str,
        role: Role,
        comment: str = "",
        scope: Scope | None = None,
    ) -> OrderPublic:
        async with records.locked(self.db, order_id) as (s, order):
            _visible(order, scope, f"no conversion order {order_id!r}")
            now = records.now_ms()
            needed = (
                Permission.COMMANDS_APPROVE if order.kind == "real" else Permission.COMMANDS_OPERATE
            )
            if not allows(role, needed):
                raise NotAllowed(
                    f"cancelling a {order.kind} order needs {needed.value}; you are {role.value}"
                )
            # Cancelling stops every shelter and returns each to its posture before: a
            # county must not stop its neighbour's conversion, so it needs them all in scope.
            _covered(order, scope, "cancelling")
            if OrderState(order.state) in FINAL_ORDER_STATES:
                raise Conflict(f"{order_id} has ended ({order.state}); nothing to cancel")
            was_running = order.state == OrderState.RUNNING
            order.state = OrderState.CANCELLED.value
            order.cancelled_by = actor
            order.finished_ms = now
            order.updated_ms = now
            order.detail = f"cancelled by {actor}: {comment or 'no comment'}"
            add_event(order, now, actor, "cancelled", comment)
            regressed: list[tuple[str, str, str]] = []
            for target in order.targets:
                checks = {
                    st.id: st.check[0].device
                    for st in Plan.model_validate_json(target.plan_json).steps
                    if st.check
                }
                for row in target.steps:
                    if row.state == StepState.REGRESSED:
                        regressed.append((target.site, row.step, checks[row.step]))
                    if row.state not in (StepState.DONE,):
                        row.state = StepState.CANCELLED.value
                        row.updated_ms = now
                if was_running and target.finished_ms is None:
                    # Back to what was declared before; the devices stay as the steps left them.
                    await records.set_posture(
                        s,
                        target.site,
                        target.posture_before,
                        order_id=order.id,
                        kind=order.kind,
                        exercise=order.exercise,
                        now=now,
                    )
        await audit(
            self.db, actor, "conversion.cancel", order_id, {"comment": comment}, "cancelled"
        )
        await self.sweeper.clear_regressions(order_id, regressed)
        self.publisher.wake.set()
        return await self.get(order_id, scope)

    # -- reading --------------------------------------------------------------------------------

    async def get(self, order_id: str, scope: Scope | None = None) -> OrderPublic:
        order = await records.get(self.db, order_id)
        _visible(
            order, scope, f"no conversion order {order_id!r}: GET /api/v1/conversions lists them"
        )
        return scoped(order_public(order, self.cfg), scope)

    async def recent(
        self,
        *,
        state: str | None = None,
        kind: str | None = None,
        site: str | None = None,
        limit: int = 100,
        scope: Scope | None = None,
    ) -> list[OrderPublic]:
        rows = await records.list_orders(
            self.db,
            state=state,
            kind=kind,
            site=site,
            limit=limit,
            sites=scope.sites if scope is not None else None,
        )
        return [scoped(order_public(r, self.cfg, with_events=False), scope) for r in rows]

    async def report(self, order_id: str, scope: Scope | None = None) -> ConversionReport:
        """The report of what ``scope`` sees of the order: a county files its own shelters."""
        return report_of(await self.get(order_id, scope))

    async def postures(self) -> dict[str, str]:
        return await records.postures(self.db)


def _visible(order: ConversionOrder, scope: Scope | None, unknown: str) -> None:
    """An order with no shelter in scope is not found, in the words used for an unknown id."""
    if scope is not None and not any(scope.has_site(t.site) for t in order.targets):
        raise NotFound(unknown)


def _covered(order: ConversionOrder, scope: Scope | None, doing: str) -> None:
    """Acting on the whole order needs an area over all its shelters. The refusal names that
    area: a common parent of the caller's own shelters, so naming it leaks nothing."""
    sites = [t.site for t in order.targets]
    if scope is None or scope.covers_sites(sites):
        return
    needed = scope.escalation_area(sites)
    raise NotAllowed(
        f"{doing} {order.id} needs someone of area {needed!r} or above: its shelters lie "
        f"beyond your area {scope.area!r}; escalate to {needed!r}"
    )
