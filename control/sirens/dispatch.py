"""Sending an activation: one signed siren.activate per gateway, and siren.cancel to each.

Commands go through the CommandService, so they have its durability: a record in the
database before anything is published, publication when the broker is back, one
publication whatever the number of replicas. Command ids come from the activation and the
gateway, so dispatching again (after a crash between the approval and the commands, or on a
second replica) makes the same commands once.
"""

from __future__ import annotations

import logging

from control.commands import MAX_TTL_S, CommandService, CommandUnavailable, InvalidCommand
from control.db import Database
from control.settings import SirenSettings
from control.sirens import records
from control.sirens.activations import ActivationState, cancel_command_id
from control.sirens.fanout import command_ttl_s, plan
from control.sirens.outcomes import TargetState
from control.sirens.trail import SERVICE_ACTOR, at, audit
from shelterwatch.contract import SignalSpec, SirenKind

__all__ = ["dispatch", "send_cancels"]

log = logging.getLogger(__name__)


async def dispatch(
    db: Database, commands: CommandService, cfg: SirenSettings, activation_id: str
) -> None:
    """Queue the activation's commands and record it; a no-op unless it is active and not
    yet dispatched."""
    activation = await records.get(db, activation_id)
    if activation.state != ActivationState.ACTIVE or activation.dispatched_ms is not None:
        return
    kind = SirenKind(activation.kind)
    signal = (
        SignalSpec.model_validate_json(activation.signal_spec) if activation.signal_spec else None
    )
    orders = plan(
        activation.id,
        kind,
        signal,
        activation.exercise,
        ((t.gateway, t.device) for t in activation.targets),
    )
    ttl_s = command_ttl_s(
        kind, signal, margin_s=cfg.ttl_margin_s, silent_test_s=cfg.silent_test_ttl_s
    )
    # The requester is the authority the gateway logs; for a live alert the approval is in
    # the audit trail next to it.
    actor = activation.requested_by
    failed: dict[str, str] = {}
    expires = 0
    try:
        # All gateways' commands in one go: queued one by one, the last gateway's sirens
        # would wait for every earlier gateway's turn at the audit chain and the database.
        made = await commands.send_siren_activates(
            [(o.command_id, o.gateway, o.order) for o in orders], actor, ttl_s
        )
        expires = max((r.expires_ms for r in made), default=0)
    except (CommandUnavailable, InvalidCommand) as exc:
        log.error("sirens: %s not sent: %s", activation_id, exc)
        failed = {o.gateway: str(exc) for o in orders}
    if await records.state_of(db, activation_id) != ActivationState.ACTIVE:
        # A cancel came in while the commands were being queued: pull back what is not
        # published yet (the cancel itself goes to every gateway anyway).
        for order in orders:
            await commands.withdraw(
                order.command_id, f"withdrawn: {activation_id} cancelled while sending", actor
            )
    async with records.locked(db, activation_id) as (_s, activation):
        if activation.dispatched_ms is not None:
            return  # another replica recorded it first
        now = records.now_ms()
        activation.dispatched_ms = now
        activation.expires_ms = expires or now
        for target in activation.targets:
            if target.gateway in failed:
                target.state = TargetState.FAILED.value
                target.detail = f"not sent: {failed[target.gateway]}"
                target.finished_ms = now
                target.updated_ms = now
        sent = len(orders) - len(failed)
        activation.state_detail = (
            f"sent to {sent} of {len(orders)} gateways ({len(activation.targets)} sirens); "
            f"waiting for their answers until {at(activation.expires_ms)}"
        )
        records.add_event(activation, now, actor, "dispatched", activation.state_detail)
    await audit(
        db,
        actor=SERVICE_ACTOR,
        action="siren.dispatch",
        target=activation_id,
        params={
            "commands": [o.command_id for o in orders],
            "failed": failed,
            "ttl_s": ttl_s,
        },
        result="dispatched" if not failed else "partly dispatched",
    )


async def send_cancels(
    db: Database,
    commands: CommandService,
    activation_id: str,
    gateways: list[str],
    activate_ids: dict[str, str],
    *,
    actor: str,
    expires_ms: int | None,
    margin_s: float,
) -> tuple[list[str], dict[str, str]]:
    """Withdraw activate commands not yet published, and send siren.cancel to every gateway
    (also those whose activate was withdrawn: it may be in flight). Returns the gateways
    whose activate was withdrawn, and those the cancel could not be queued for."""
    withdrawn = []
    refused: dict[str, str] = {}
    now = records.now_ms()
    # Valid as long as the signal could still be playing: a late cancel must still count.
    remaining_s = ((expires_ms or now) - now) / 1000
    ttl_s = min(MAX_TTL_S, max(30.0, remaining_s + margin_s))
    for gateway in gateways:
        command_id = activate_ids.get(gateway)
        if command_id and await commands.withdraw(
            command_id, f"withdrawn: {activation_id} cancelled by {actor}", actor
        ):
            withdrawn.append(gateway)
        try:
            await commands.send_siren_cancel(
                cancel_command_id(activation_id, gateway), gateway, activation_id, actor, ttl_s
            )
        except (CommandUnavailable, InvalidCommand) as exc:
            log.error("sirens: cancel of %s not sent to %s: %s", activation_id, gateway, exc)
            refused[gateway] = str(exc)
    return withdrawn, refused
