"""Following an activation to its end: per-siren answers, and the sweep.

``on_answer`` routes each gateway answer to the target it is about (the command id and the
siren's device id name it). The sweep, on every replica, closes what can no longer end by
itself: an approval window that ran out (``expired``), sirens with no final answer by their
command's expiry plus the grace (``no_answer``), commands that were never published, and an
approved activation whose commands were not all queued (a crash in between).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.commands import CommandService
from control.db import Database, SirenActivation, SirenTarget
from control.settings import SirenSettings
from control.sirens import records
from control.sirens.activations import FINAL_STATES, ActivationState, parse_cancel_command_id
from control.sirens.dispatch import dispatch
from control.sirens.outcomes import (
    FINAL_TARGET,
    TargetState,
    activation_end,
    describe_end,
    outcome_of,
    target_after,
)
from control.sirens.trail import SERVICE_ACTOR, at, audit
from shelterwatch.contract import CommandAck, CommandState, SirenKind

__all__ = ["Audits", "close_target", "expire", "on_answer", "settle", "sweep_one"]

log = logging.getLogger(__name__)

_REFUSED = {CommandState.REJECTED, CommandState.EXPIRED}
# A command the service closed without it reaching the gateway.
_NEVER_SENT = {"expired", "failed", "cancelled", "rejected"}
# An approved activation whose commands are not all queued after this long is dispatched
# again (the first try may still be running on another replica before that).
_REDISPATCH_AFTER_MS = 10_000


@dataclass
class Audits:
    rows: list[dict[str, object]] = field(default_factory=list)

    def add(self, actor: str, action: str, target: str, result: str, **params: object) -> None:
        self.rows.append(
            {"actor": actor, "action": action, "target": target, "result": result, "params": params}
        )

    async def write(self, db: Database) -> None:
        for row in self.rows:
            await audit(db, **row)  # type: ignore[arg-type]


def settle(activation: SirenActivation, now: int, audits: Audits) -> None:
    """End the activation if every target is final (or correct its end after a late fact)."""
    state = ActivationState(activation.state)
    if state in (ActivationState.PENDING_APPROVAL, ActivationState.EXPIRED):
        return
    if state is ActivationState.REJECTED:
        return
    states = [TargetState(t.state) for t in activation.targets]
    end = activation_end(states, cancelled=activation.cancelled_ms is not None)
    if end is None or end.value == activation.state:
        return
    corrected = state in FINAL_STATES
    activation.state = end.value
    finished = [t.finished_ms for t in activation.targets if t.finished_ms is not None]
    activation.finished_ms = max(finished, default=now)
    detail = describe_end(states)
    if end is ActivationState.CANCELLED:
        detail = f"cancelled by {activation.cancelled_by}; {detail}"
    activation.state_detail = detail
    event = "corrected" if corrected else "ended"
    records.add_event(activation, now, SERVICE_ACTOR, event, f"{end.value}: {detail}")
    audits.add(SERVICE_ACTOR, f"siren.{event}", activation.id, end.value, detail=detail)
    log.info("sirens: %s %s: %s", activation.id, end.value, detail)


async def on_answer(db: Database, commands: CommandService, gateway: str, ack: CommandAck) -> None:
    activation_id = await records.activation_of_command(db, ack.id)
    if activation_id is None:
        await _cancel_answer(db, gateway, ack)
        return
    if ack.device is None:
        if ack.state in _REFUSED:
            await _refused(db, commands, activation_id, gateway, ack)
        return
    audits = Audits()
    # Only the activation's row (locked, so answers from several gateways and the sweep take
    # turns) and the one target: an activation of a thousand sirens gets a thousand answers
    # at once, and loading every target for each of them would make that quadratic.
    async with db.session() as s, s.begin():
        await db.write_lock(s, SirenActivation)
        activation = await s.get(SirenActivation, activation_id, with_for_update=True)
        if activation is None:
            return
        query = select(SirenTarget).where(
            SirenTarget.activation_id == activation_id,
            SirenTarget.command_id == ack.id,
            SirenTarget.device == ack.device,
        )
        target = (await s.scalars(query)).one_or_none()
        if target is None:
            log.warning(
                "sirens: %s answered for %s in %s, which is not one of its targets",
                gateway,
                ack.device,
                ack.id,
            )
            return
        kind = SirenKind(activation.kind)
        said = outcome_of(ack, kind)
        after = target_after(TargetState(target.state), said) if said is not None else None
        if after is None:
            return  # a duplicate, or older news than what the target shows
        now = records.now_ms()
        late = target.state == TargetState.NO_ANSWER
        if target.sent_ms is None and target.command_id:
            # The sweep copies it too, but only while the target is open: a siren that
            # ends before the next sweep must still show when its command left.
            sent = await records.sent_times(s, [target.command_id])
            target.sent_ms = sent.get(target.command_id, ("", None))[1]
        target.state = after.value
        target.detail = ack.detail
        target.updated_ms = now
        if after is TargetState.STARTED:
            target.started_ms = ack.ts
        else:
            target.finished_ms = ack.ts
            if kind is SirenKind.SILENT_TEST:
                await records.note_last_test(s, target, activation.id)
        audits.add(
            f"gateway:{gateway}",
            "siren.outcome",
            f"{activation.id}/{target.siren}",
            after.value,
            command=ack.id,
            device=ack.device,
            detail=ack.detail,
            ts=ack.ts,
            late=late,
        )
        ended = after in FINAL_TARGET and await records.open_count(s, activation_id) == 0
    if ended:
        # The last final answer (or a late one after the end): the activation ends, or its
        # end is corrected. settle() decides, and does nothing when nothing changes.
        async with records.locked(db, activation_id) as (_s, full):
            settle(full, records.now_ms(), audits)
    await audits.write(db)


async def _refused(
    db: Database, commands: CommandService, activation_id: str, gateway: str, ack: CommandAck
) -> None:
    # A refusal after an acceptance is about a duplicate copy (see control/commands/states):
    # only a refusal that is the command's own outcome fails its sirens.
    record = await commands.get(ack.id)
    if record is None or record.state not in ("rejected", "expired"):
        return
    audits = Audits()
    async with records.locked(db, activation_id) as (_s, activation):
        now = records.now_ms()
        detail = f"gateway {gateway} refused the command ({ack.state.value}): {ack.detail}"
        for target in records.open_targets(activation):
            if target.command_id == ack.id:
                close_target(target, TargetState.FAILED, detail, now)
                audits.add(
                    SERVICE_ACTOR,
                    "siren.outcome",
                    f"{activation.id}/{target.siren}",
                    TargetState.FAILED.value,
                    detail=detail,
                )
        records.add_event(activation, now, f"gateway:{gateway}", "refused", detail)
        log.error("sirens: %s: %s", activation.id, detail)
        settle(activation, now, audits)
    await audits.write(db)


async def _cancel_answer(db: Database, gateway: str, ack: CommandAck) -> None:
    activation_id = parse_cancel_command_id(ack.id)
    if activation_id is None or ack.state not in (*_REFUSED, CommandState.FAILED):
        return
    detail = f"gateway {gateway} did not take the cancel ({ack.state.value}): {ack.detail}"
    log.error("sirens: %s: %s", activation_id, detail)
    async with records.locked(db, activation_id) as (_s, activation):
        records.add_event(
            activation, records.now_ms(), f"gateway:{gateway}", "cancel_refused", detail
        )
    await audit(
        db,
        actor=f"gateway:{gateway}",
        action="siren.cancel_refused",
        target=activation_id,
        params={"command": ack.id, "detail": ack.detail},
        result=ack.state.value,
    )


def close_target(target: SirenTarget, state: TargetState, detail: str, now: int) -> None:
    target.state = state.value
    target.detail = detail
    target.finished_ms = now
    target.updated_ms = now


async def sweep_one(
    db: Database, commands: CommandService, cfg: SirenSettings, grace_ms: int, activation_id: str
) -> None:
    audits = Audits()
    redispatch = False
    async with records.locked(db, activation_id) as (s, activation):
        now = records.now_ms()
        state = ActivationState(activation.state)
        if state is ActivationState.PENDING_APPROVAL:
            if activation.approve_by_ms is not None and activation.approve_by_ms < now:
                expire(activation, now, cfg.approval_window_s, audits)
        elif state in (ActivationState.ACTIVE, ActivationState.CANCELLING):
            if activation.dispatched_ms is None:
                started = activation.approved_ms or activation.requested_ms
                if now - started > cfg.approval_window_s * 1000:
                    _not_dispatched(activation, now, cfg.approval_window_s, audits)
                elif now - started > _REDISPATCH_AFTER_MS and state is ActivationState.ACTIVE:
                    redispatch = True
            else:
                await _follow_commands(s, activation, now, grace_ms, audits)
            settle(activation, now, audits)
    await audits.write(db)
    if redispatch:
        log.warning("sirens: %s was approved but not fully sent; sending it now", activation_id)
        await dispatch(db, commands, cfg, activation_id)


def expire(activation: SirenActivation, now: int, window_s: float, audits: Audits) -> None:
    detail = (
        f"nobody approved it within {window_s:g} s (by {at(activation.approve_by_ms or now)}); "
        "nothing was sent. Request it again if it is still needed"
    )
    activation.state = ActivationState.EXPIRED.value
    activation.state_detail = detail
    activation.finished_ms = now
    for target in activation.targets:
        close_target(target, TargetState.CANCELLED, "not approved in time; nothing was sent", now)
    records.add_event(activation, now, SERVICE_ACTOR, "expired", detail)
    audits.add(SERVICE_ACTOR, "siren.expire", activation.id, "expired", detail=detail)
    log.warning("sirens: live alert %s expired: %s", activation.id, detail)


def _not_dispatched(activation: SirenActivation, now: int, window_s: float, audits: Audits) -> None:
    detail = (
        f"not sent: its commands could not all be queued within {window_s:g} s (audit trail "
        "or database unavailable); a late alert is not sent. Request it again if needed"
    )
    for target in records.open_targets(activation):
        if target.command_id is None or target.state == TargetState.PENDING:
            close_target(target, TargetState.FAILED, detail, now)
    activation.dispatched_ms = now
    activation.expires_ms = now
    records.add_event(activation, now, SERVICE_ACTOR, "not_dispatched", detail)
    audits.add(SERVICE_ACTOR, "siren.not_dispatched", activation.id, "failed", detail=detail)
    log.error("sirens: %s: %s", activation.id, detail)


async def _follow_commands(
    s: AsyncSession, activation: SirenActivation, now: int, grace_ms: int, audits: Audits
) -> None:
    open_targets = records.open_targets(activation)
    if not open_targets:
        return
    ids = sorted({t.command_id for t in open_targets if t.command_id})
    commands = await records.sent_times(s, ids)
    deadline = (activation.expires_ms or now) + grace_ms
    silent = activation.kind == SirenKind.SILENT_TEST

    async def finish(target: SirenTarget, state: TargetState, detail: str, now: int) -> None:
        close_target(target, state, detail, now)
        if silent:
            # A silent test that never answered is a failed check of that siren.
            await records.note_last_test(s, target, activation.id)

    for target in open_targets:
        state, sent_ms = commands.get(target.command_id or "", ("missing", None))
        if sent_ms is not None and target.sent_ms is None:
            target.sent_ms = sent_ms
            if target.state == TargetState.PENDING:
                target.state = TargetState.SENT.value
                target.updated_ms = now
        if sent_ms is not None and state in ("rejected", "expired"):
            detail = f"gateway {target.gateway} refused the command ({state})"
            await finish(target, TargetState.FAILED, detail, now)
            audits.add(
                SERVICE_ACTOR,
                "siren.outcome",
                f"{activation.id}/{target.siren}",
                TargetState.FAILED.value,
                detail=detail,
            )
        elif state == "missing" and activation.cancelled_ms is not None:
            # Its command was never queued: the cancel came first.
            detail = "cancelled before it was sent"
            await finish(target, TargetState.CANCELLED, detail, now)
            audits.add(
                SERVICE_ACTOR,
                "siren.outcome",
                f"{activation.id}/{target.siren}",
                TargetState.CANCELLED.value,
                detail=detail,
            )
        elif sent_ms is None and state in _NEVER_SENT:
            final = TargetState.CANCELLED if state == "cancelled" else TargetState.FAILED
            detail = f"never reached gateway {target.gateway}: command {state}"
            await finish(target, final, detail, now)
            audits.add(
                SERVICE_ACTOR,
                "siren.outcome",
                f"{activation.id}/{target.siren}",
                final.value,
                detail=detail,
            )
        elif now > deadline:
            last = (
                f"started at {at(target.started_ms)}"
                if target.started_ms
                else f"sent at {at(target.sent_ms)}"
                if target.sent_ms
                else "never published"
            )
            detail = (
                f"no answer from gateway {target.gateway} by {at(deadline)} (the command's "
                f"expiry plus {grace_ms / 1000:g} s); last known: {last}. A late answer "
                "replaces this"
            )
            await finish(target, TargetState.NO_ANSWER, detail, now)
            audits.add(
                SERVICE_ACTOR,
                "siren.outcome",
                f"{activation.id}/{target.siren}",
                TargetState.NO_ANSWER.value,
                detail=detail,
            )
