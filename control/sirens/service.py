"""The siren service: activations from request to report. Lifespan state key ``sirens``.

``request`` checks the kind, signal and targets, audits the request (nothing happens
without a trace) and records the activation with one target row per siren. A live alert
then waits for a second person (``approve``) within ``sirens.approval_window_s``; every
other kind is dispatched at once. Answers and the sweep are in tracking.py, the commands in
dispatch.py. Other services (schedules) call ``request`` and ``resolve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
from typing import Protocol, Self

from sqlalchemy.exc import SQLAlchemyError

from control.areas import Scope
from control.auth import Role, allows, two_person_rule
from control.commands import CommandService
from control.db import Database, SirenActivation, SirenPost, SirenTarget
from control.exercises.labels import check_label
from control.settings import ControlSettings
from control.sirens import inventory, records, scoping, tracking
from control.sirens.activations import (
    FINAL_STATES,
    KIND_PERMISSION,
    ActivationState,
    activate_command_id,
    is_test_day,
    new_activation_id,
)
from control.sirens.dispatch import dispatch, send_cancels
from control.sirens.errors import Conflict, InvalidInput, NotAllowed
from control.sirens.health import health_of, read_telemetry, siren_public
from control.sirens.models import ActivationPublic, Preview, PreviewGateway, SirenPublic
from control.sirens.outcomes import TargetState
from control.sirens.reports import ActivationReport, activation_public, report_of, target_public
from control.sirens.signals import SignalCatalogue
from control.sirens.trail import at, audit, audit_first
from shelterwatch.contract import CommandAck, SirenKind
from shelterwatch.signals import SignalDefinition
from shelterwatch.store import TimeSeriesStore

__all__ = ["ActivationListener", "SirenService"]

log = logging.getLogger(__name__)

TEST_TONE = "test_tone"
# The CAP listener gets this long; the sirens are sent whatever it does.
_LISTENER_TIMEOUT_S = 10.0


class ActivationListener(Protocol):
    """Told after an activation's commands are queued, and after its cancel is sent (the
    CAP feed, control/capfeed). Each call may come twice (retries, replicas): it must be
    idempotent, and it must not raise: its failures are its own to log."""

    async def activation_dispatched(self, activation_id: str, actor: str) -> None: ...

    async def activation_cancelled(self, activation_id: str, actor: str) -> None: ...


class _State(enum.Enum):
    NEW = 1
    OPEN = 2
    CLOSED = 3


class SirenService:
    def __init__(
        self,
        settings: ControlSettings,
        db: Database,
        commands: CommandService,
        store: TimeSeriesStore | None = None,
        *,
        sweep_interval_s: float | None = None,
        listener: ActivationListener | None = None,
    ) -> None:
        self.settings = settings
        self.listener = listener
        self.db = db
        self.commands = commands
        self.store = store
        self._cfg = settings.sirens
        # Loaded (and checked) now: a bad catalogue stops the start, not the first alert.
        self.signals = SignalCatalogue(self._cfg.signals_file, ttl_margin_s=self._cfg.ttl_margin_s)
        self._grace_ms = int(settings.command_grace_s * 1000)
        self._sweep_s = sweep_interval_s or self._cfg.sweep_interval_s
        self._state = _State.NEW
        self._runner: asyncio.Task[None] | None = None
        commands.add_answer_listener(self._on_answer)

    async def __aenter__(self) -> Self:
        if self._state is not _State.NEW:
            raise RuntimeError("a SirenService opens once")
        self._state = _State.OPEN
        self._runner = asyncio.create_task(self._sweeper(), name="siren-sweep")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._state = _State.CLOSED
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    # -- targets ------------------------------------------------------------------------------

    async def resolve(
        self, *, sirens: list[str], groups: list[str], scope: Scope | None = None
    ) -> list[SirenPost]:
        """The siren posts that ids and group names stand for (``all``: every siren), each
        once, sorted by id. Raises UnknownTarget (a ValueError) naming every unknown one.

        With a ``scope`` (the caller's area; None is the service itself): a siren outside it
        is unknown, ``all`` means every siren inside it, and a group that reaches outside it
        raises NotAllowed, saying how many sirens lie outside and which area may act."""
        if scope is None or scope.unlimited:
            return await inventory.resolve(self.db, sirens=sirens, groups=groups)
        posts = await inventory.resolve(
            self.db, sirens=sirens, groups=groups, visible=lambda p: scope.has_site(p.site)
        )
        scoping.must_cover(scope, [p.site for p in posts], f"groups {', '.join(groups)} reach")
        return posts

    async def with_health(self, posts: list[SirenPost]) -> list[SirenPublic]:
        telemetry = await read_telemetry(self.store, posts)
        return [siren_public(p, health_of(p, telemetry.get((p.site, p.device)))) for p in posts]

    def _signal(
        self, kind: SirenKind, signal: str | None, exercise: str | None
    ) -> SignalDefinition | None:
        if kind is SirenKind.SILENT_TEST:
            if signal is not None:
                raise InvalidInput("a silent test makes no sound: leave the signal out")
            return None
        if kind is SirenKind.LIVE and exercise is not None:
            raise InvalidInput("a live alert is not an exercise: leave exercise out")
        if kind is SirenKind.AUDIBLE_TEST:
            definition = self.signals.get(signal or TEST_TONE)
            now = records.now_ms()
            long = definition.duration_s > self._cfg.short_tone_max_s
            if long and not is_test_day(now, self._cfg.test_days, self._cfg.timezone):
                raise Conflict(
                    f"an audible test sounds a full signal ({definition.name}, "
                    f"{definition.duration_s:g} s) only on a test day "
                    f"({', '.join(self._cfg.test_days)} in {self._cfg.timezone}; "
                    "sirens.test_days); today use the test tone, or a drill"
                )
            return definition
        if signal is None:
            raise InvalidInput(f"a {kind.value} needs a signal: GET /api/v1/signals lists them")
        return self.signals.get(signal)

    async def _targets(
        self, sirens: list[str], groups: list[str], scope: Scope | None
    ) -> tuple[list[SirenPost], dict[str, str]]:
        posts = await self.resolve(sirens=sirens, groups=groups, scope=scope)
        if not posts:
            raise Conflict(f"the groups {', '.join(groups)} have no sirens now: nothing to act on")
        health = await self.with_health(posts)
        return posts, {h.id: h.flag_reason for h in health}

    async def preview(
        self,
        *,
        kind: SirenKind,
        signal: str | None,
        sirens: list[str],
        groups: list[str],
        exercise: str | None = None,
        scope: Scope | None = None,
    ) -> Preview:
        """What a request would do: every resolved siren, flagged ones marked. Changes nothing."""
        definition = self._signal(kind, signal, exercise)
        posts, flags = await self._targets(sirens, groups, scope)
        targets = [_target_row(p, flags[p.id], "") for p in posts]
        views = [target_public(t) for t in targets]
        by_gateway: dict[str, list[str]] = {}
        for p in posts:
            by_gateway.setdefault(p.gateway, []).append(p.id)
        flagged = [v for v in views if v.flags]
        warnings = [f"{v.siren}: {v.flags}" for v in flagged]
        live = kind is SirenKind.LIVE
        return Preview(
            kind=kind,
            signal=definition.name if definition else None,
            signal_duration_s=definition.duration_s if definition else None,
            needs_approval=live,
            approval_window_s=self._cfg.approval_window_s if live else None,
            targets=views,
            gateways=[PreviewGateway(gateway=g, sirens=s) for g, s in sorted(by_gateway.items())],
            flagged=len(flagged),
            warnings=warnings,
        )

    # -- activations --------------------------------------------------------------------------

    async def request(
        self,
        *,
        kind: SirenKind,
        signal: str | None,
        sirens: list[str],
        groups: list[str],
        actor: str,
        reason: str,
        schedule: str | None = None,
        exercise: str | None = None,
        scope: Scope | None = None,
    ) -> ActivationPublic:
        """Start an activation. Non-live kinds are dispatched at once; a live alert waits
        for a commander other than ``actor`` to approve it. ``schedule`` names the schedule
        that started it; ``scope`` is the requester's area (None: the service itself), which
        must hold every target. Raises UnknownTarget, InvalidInput, Conflict, NotAllowed,
        SirensUnavailable."""
        if not reason.strip():
            raise InvalidInput(
                "give a reason: the approver, the audit trail and the report show it"
            )
        kind = SirenKind(kind)
        definition = self._signal(kind, signal, exercise)
        if kind is SirenKind.DRILL and exercise is None:
            exercise = "drill"
        posts, flags = await self._targets(sirens, groups, scope)
        # An exercise's label only on its drills and tests, inside its areas, while it runs.
        drill = kind is not SirenKind.LIVE
        await check_label(
            self.db, exercise, drill=drill, sites={p.site for p in posts}, refuse=Conflict
        )
        activation_id = new_activation_id()
        live = kind is SirenKind.LIVE
        await audit_first(
            self.db,
            actor=actor,
            action="siren.request",
            target=activation_id,
            params={
                "kind": kind.value,
                "signal": definition.name if definition else None,
                "sirens": sirens,
                "groups": groups,
                "targets": [p.id for p in posts],
                "reason": reason,
                "schedule": schedule,
                "exercise": exercise,
            },
        )
        now = records.now_ms()
        approve_by = now + int(self._cfg.approval_window_s * 1000) if live else None
        approver_area = self._approval_area(scope, [p.site for p in posts])
        of_area = f" of area {approver_area} or above" if approver_area else ""
        detail = (
            f"waiting until {at(approve_by)} for a commander{of_area} other than {actor} to approve"
            if approve_by is not None
            else f"sending to {len({p.gateway for p in posts})} gateways"
        )
        activation = SirenActivation(
            id=activation_id,
            kind=kind.value,
            signal=definition.name if definition else None,
            signal_spec=definition.spec().to_json().decode() if definition else None,
            state=(ActivationState.PENDING_APPROVAL if live else ActivationState.ACTIVE).value,
            state_detail=detail,
            reason=reason,
            requested_targets=json.dumps({"sirens": sirens, "groups": groups}),
            requested_by=actor,
            requested_ms=now,
            approve_by_ms=approve_by,
            decision_comment="",
            schedule=schedule,
            exercise=exercise,
            updated_ms=now,
            targets=[
                _target_row(p, flags[p.id], activate_command_id(activation_id, p.gateway), now)
                for p in posts
            ],
        )
        records.add_event(activation, now, actor, "requested", f"{kind.value}: {reason}")
        async with self.db.session() as s, s.begin():
            s.add(activation)
        log.info(
            "sirens: %s requested by %s: %s %s on %d sirens (%s)",
            activation_id,
            actor,
            kind.value,
            activation.signal,
            len(posts),
            reason,
        )
        if not live:
            await dispatch(self.db, self.commands, self._cfg, activation_id)
            await self._tell("dispatched", activation_id, actor)
        return await self.get(activation_id, scope=scope)

    async def approve(
        self, activation_id: str, *, actor: str, comment: str = "", scope: Scope | None = None
    ) -> ActivationPublic:
        """The second person's yes to a live alert: dispatches it. Conflict (409) for your own
        request, one not waiting for approval, or one whose window ran out; NotAllowed (403)
        when the approver's ``scope`` does not hold every target (escalation goes up: the
        area covering them all approves)."""
        expired = False
        async with records.locked(self.db, activation_id) as (_s, activation):
            now = records.now_ms()
            _must_decide_within(scope, activation, "approve")
            _must_wait_for_approval(activation)
            if activation.approve_by_ms is not None and activation.approve_by_ms < now:
                audits = tracking.Audits()
                tracking.expire(activation, now, self._cfg.approval_window_s, audits)
                expired = True
            elif not two_person_rule(activation.requested_by, actor):
                raise Conflict(
                    f"you requested {activation_id}; the two-person rule needs another "
                    "commander to approve it"
                )
            else:
                activation.state = ActivationState.ACTIVE.value
                activation.approved_by = actor
                activation.approved_ms = now
                activation.decision_comment = comment
                activation.state_detail = f"approved by {actor}; sending"
                records.add_event(activation, now, actor, "approved", comment)
        if expired:
            await audits.write(self.db)
            raise Conflict(
                f"{activation_id} expired at {at(activation.approve_by_ms or 0)}: nobody approved "
                f"it within {self._cfg.approval_window_s:g} s; it was not sent. Request it again"
            )
        await audit(
            self.db,
            actor=actor,
            action="siren.approve",
            target=activation_id,
            params={"requested_by": activation.requested_by, "comment": comment},
            result="approved",
        )
        log.warning("sirens: live alert %s approved by %s; dispatching", activation_id, actor)
        await dispatch(self.db, self.commands, self._cfg, activation_id)
        await self._tell("dispatched", activation_id, actor)
        return await self.get(activation_id, scope=scope)

    async def reject(
        self, activation_id: str, *, actor: str, comment: str = "", scope: Scope | None = None
    ) -> ActivationPublic:
        async with records.locked(self.db, activation_id) as (_s, activation):
            now = records.now_ms()
            _must_decide_within(scope, activation, "reject")
            _must_wait_for_approval(activation)
            activation.state = ActivationState.REJECTED.value
            activation.decision_comment = comment
            activation.approved_by = actor  # the decider, for the report
            activation.finished_ms = now
            activation.state_detail = (
                f"rejected by {actor}: {comment or 'no comment'}; nothing was sent"
            )
            for target in activation.targets:
                tracking.close_target(
                    target, TargetState.CANCELLED, f"rejected by {actor}; nothing was sent", now
                )
            records.add_event(activation, now, actor, "rejected", comment)
        await audit(
            self.db,
            actor=actor,
            action="siren.reject",
            target=activation_id,
            params={"comment": comment},
            result="rejected",
        )
        return await self.get(activation_id, scope=scope)

    async def cancel(
        self,
        activation_id: str,
        *,
        actor: str,
        role: Role | None,
        comment: str = "",
        scope: Scope | None = None,
    ) -> ActivationPublic:
        """Stop an activation at every siren (or withdraw a live request not yet approved).
        ``role`` must be one that may start its kind; None is the service itself. A cancel
        stops every siren of it, so ``scope`` must hold them all: a county whose own sirens
        must stop asks the area that ordered it."""
        async with records.locked(self.db, activation_id) as (_s, activation):
            now = records.now_ms()
            _must_decide_within(scope, activation, "cancel")
            kind = SirenKind(activation.kind)
            if role is not None and not allows(role, KIND_PERMISSION[kind]):
                raise NotAllowed(
                    f"cancelling a {kind.value} needs {KIND_PERMISSION[kind].value}; "
                    f"you are {role.value}"
                )
            state = ActivationState(activation.state)
            if state in FINAL_STATES:
                raise Conflict(f"{activation_id} has ended ({state.value}); nothing to cancel")
            if state is ActivationState.CANCELLING:
                raise Conflict(
                    f"{activation_id} is being cancelled already (by {activation.cancelled_by})"
                )
            activation.cancelled_by = actor
            activation.cancelled_ms = now
            withdrawn = state is ActivationState.PENDING_APPROVAL
            if withdrawn:
                activation.state = ActivationState.CANCELLED.value
                activation.finished_ms = now
                activation.state_detail = f"withdrawn by {actor} before approval; nothing was sent"
                for target in activation.targets:
                    tracking.close_target(
                        target,
                        TargetState.CANCELLED,
                        "withdrawn before approval; nothing was sent",
                        now,
                    )
            else:
                activation.state = ActivationState.CANCELLING.value
                activation.state_detail = f"cancelled by {actor}; waiting for the sirens to confirm"
            records.add_event(activation, now, actor, "cancelled", comment)
            gateways = sorted({t.gateway for t in activation.targets})
            activate_ids = {t.gateway: t.command_id for t in activation.targets if t.command_id}
            expires = activation.expires_ms
        await audit(
            self.db,
            actor=actor,
            action="siren.cancel",
            target=activation_id,
            params={"comment": comment, "withdrawn": withdrawn, "gateways": gateways},
            result="cancelled" if withdrawn else "cancelling",
        )
        if not withdrawn:
            pulled, refused = await send_cancels(
                self.db,
                self.commands,
                activation_id,
                gateways,
                activate_ids,
                actor=actor,
                expires_ms=expires,
                margin_s=self._cfg.ttl_margin_s,
            )
            await self._after_cancel(activation_id, actor, pulled, refused)
            await self._tell("cancelled", activation_id, actor)
        return await self.get(activation_id, scope=scope)

    async def _tell(self, what: str, activation_id: str, actor: str) -> None:
        """Tell the listener (CAP) after the sirens have their commands: nothing it does
        can hold back or fail an activation."""
        if self.listener is None:
            return
        call = (
            self.listener.activation_dispatched
            if what == "dispatched"
            else self.listener.activation_cancelled
        )
        try:
            async with asyncio.timeout(_LISTENER_TIMEOUT_S):
                await call(activation_id, actor)
        except Exception:
            log.exception("sirens: the activation listener failed on %s %s", what, activation_id)

    async def _after_cancel(
        self, activation_id: str, actor: str, pulled: list[str], refused: dict[str, str]
    ) -> None:
        audits = tracking.Audits()
        async with records.locked(self.db, activation_id) as (_s, activation):
            now = records.now_ms()
            for target in records.open_targets(activation):
                if target.gateway in pulled:
                    tracking.close_target(
                        target, TargetState.CANCELLED, "cancelled before it was sent", now
                    )
            involved = len({t.gateway for t in activation.targets})
            detail = f"siren.cancel queued for {involved - len(refused)} of {involved} gateways"
            if pulled:
                detail += f"; withdrawn before publication on {', '.join(pulled)}"
            if refused:
                detail += "; NOT queued for " + ", ".join(f"{g} ({e})" for g, e in refused.items())
            records.add_event(activation, now, actor, "cancel_sent", detail)
            tracking.settle(activation, now, audits)
        await audits.write(self.db)

    # -- reading ------------------------------------------------------------------------------

    async def get(self, activation_id: str, *, scope: Scope | None = None) -> ActivationPublic:
        """The activation as ``scope`` sees it: NotFound if none of its targets is in it;
        only the targets in it when some are not."""
        activation = await records.get(self.db, activation_id)
        scope = _limited(scope)
        scoping.must_see(scope, activation)
        return self._view(activation, scope)

    async def recent(
        self,
        *,
        state: str | None = None,
        kind: str | None = None,
        schedule: str | None = None,
        siren: str | None = None,
        limit: int = 100,
        scope: Scope | None = None,
    ) -> list[ActivationPublic]:
        """The newest first; with a ``scope``, those with at least one target in it, each
        showing only those targets."""
        scope = _limited(scope)
        rows = await records.list_activations(
            self.db,
            state=state,
            kind=kind,
            schedule=schedule,
            siren=siren,
            limit=limit,
            sites=scope.sites if scope is not None else None,
        )
        return [self._view(r, scope, with_events=False) for r in rows]

    async def report(self, activation_id: str, *, scope: Scope | None = None) -> ActivationReport:
        activation = await records.get(self.db, activation_id)
        scope = _limited(scope)
        scoping.must_see(scope, activation)
        return report_of(activation, scoping.Redactor(scope, activation.targets) if scope else None)

    async def target_sites(self, activation_id: str) -> list[str] | None:
        """The sites of an activation's targets (None: no such activation), for the routes
        that show what belongs to an activation (its CAP messages) to decide who sees it."""
        return await records.target_sites(self.db, activation_id)

    def _view(
        self, activation: SirenActivation, scope: Scope | None, *, with_events: bool = True
    ) -> ActivationPublic:
        redactor = scoping.Redactor(scope, activation.targets) if scope is not None else None
        waiting = activation.state == ActivationState.PENDING_APPROVAL
        area = self._approval_area(scope, [t.site for t in activation.targets]) if waiting else None
        return activation_public(
            activation, with_events=with_events, redactor=redactor, approval_area=area
        )

    def _approval_area(self, scope: Scope | None, sites: list[str]) -> str | None:
        # Without a scope (the service, or a caller before areas existed) there is no tree
        # to name an area from.
        if scope is None or scope.tree.empty:
            return None
        return scope.needed_area(sites)

    # -- answers and the sweep ----------------------------------------------------------------

    async def _on_answer(self, gateway: str, ack: CommandAck) -> None:
        await tracking.on_answer(self.db, self.commands, gateway, ack)

    async def _sweeper(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._sweep_s)
            try:
                for activation_id in await records.due_activations(self.db):
                    await tracking.sweep_one(
                        self.db, self.commands, self._cfg, self._grace_ms, activation_id
                    )
            except (SQLAlchemyError, OSError) as exc:
                if not failing:
                    log.warning("sirens: the sweep cannot reach the database: %s", exc)
                failing = True
                continue
            if failing:
                log.info("sirens: the sweep reaches the database again")
            failing = False


def _limited(scope: Scope | None) -> Scope | None:
    """None for a scope that reaches everything, so that views skip redacting. A scope with
    no area but a tree still names approval areas, so only an unlimited one becomes None when
    the tree is empty."""
    if scope is None or (scope.unlimited and scope.tree.empty):
        return None
    return scope


def _must_decide_within(scope: Scope | None, activation: SirenActivation, verb: str) -> None:
    """A decision over an activation (approve, reject, cancel) needs every target in the
    decider's area: it is answered for all its sirens at once."""
    if scope is None or scope.unlimited:
        return
    scoping.must_see(scope, activation)
    sites = [t.site for t in activation.targets]
    if not scope.covers_sites(sites):
        needed = scope.escalation_area(sites)
        raise NotAllowed(
            f"{activation.id} reaches beyond your area ({scope.area}): "
            f"{sum(1 for s in sites if not scope.has_site(s))} of its {len(sites)} sirens lie "
            f"outside it. To {verb} it needs a user of area {needed or 'the root'}"
        )


def _must_wait_for_approval(activation: SirenActivation) -> None:
    if activation.state == ActivationState.EXPIRED:
        raise Conflict(
            f"{activation.id} expired: nobody approved it in time, and it was not sent. "
            "Request it again"
        )
    if activation.state != ActivationState.PENDING_APPROVAL:
        raise Conflict(
            f"{activation.id} is {activation.state}, not waiting for approval "
            "(only a live alert waits for one)"
        )


def _target_row(post: SirenPost, flags: str, command_id: str, now: int = 0) -> SirenTarget:
    return SirenTarget(
        siren=post.id,
        name=post.name,
        site=post.site,
        gateway=post.gateway,
        device=post.device,
        district=post.district,
        flags=flags,
        command_id=command_id or None,
        state=TargetState.PENDING.value,
        detail="",
        updated_ms=now,
    )
