"""The sweep: advances every running order, on every replica, one order at a time.

For each open order it reads the shelters' latest telemetry from the store and the states of
the steps' writes (outside any lock), then takes the order's row lock and advances it
(execution.py). What that decided is done after the commit: the writes go to the command
service (audited, signed, published, read back by the gateway), alerts are recorded in the
control service's alert table (as the alert engine's are, with their webhooks), and postures
are stored for the publisher. Two replicas sweeping the same order take turns on its lock;
the second sees what the first decided, so a write is sent once per attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from control.alerts.records import record_event
from control.commands import CommandService
from control.conversions import records
from control.conversions.checks import Readings, readings_of
from control.conversions.execution import (
    Actions,
    AlertChange,
    OrderState,
    Send,
    StepState,
    add_event,
    advance,
)
from control.conversions.trail import SERVICE_ACTOR, audit
from control.db import ConversionStep, Database
from control.settings import ControlSettings
from shelterwatch.contract import Alert, Value
from shelterwatch.errors import ShelterwatchError
from shelterwatch.store import TimeSeriesStore

__all__ = ["Sweeper", "alert_rule"]

log = logging.getLogger(__name__)


def alert_rule(step: str) -> str:
    return f"conversion-{step}"


class Sweeper:
    def __init__(
        self,
        settings: ControlSettings,
        db: Database,
        commands: CommandService,
        store: TimeSeriesStore,
        posture_wake: asyncio.Event,
        *,
        interval_s: float,
    ) -> None:
        self.settings = settings
        self.cfg = settings.conversions
        self.db = db
        self.commands = commands
        self.store = store
        self.posture_wake = posture_wake
        self.interval_s = interval_s
        self.wake = asyncio.Event()

    async def run(self) -> None:
        failing = False
        while True:
            try:
                async with asyncio.timeout(self.interval_s):
                    await self.wake.wait()
            except TimeoutError:
                pass
            self.wake.clear()
            try:
                for order_id in await records.due_orders(self.db):
                    await self.sweep_one(order_id)
            except (SQLAlchemyError, OSError) as exc:
                if not failing:
                    log.warning("conversions: the sweep cannot reach the database: %s", exc)
                failing = True
                continue
            if failing:
                log.info("conversions: the sweep reaches the database again")
            failing = False

    async def sweep_one(self, order_id: str) -> None:
        order = await records.get(self.db, order_id)
        now = records.now_ms()
        if order.state == OrderState.PENDING_APPROVAL:
            if order.approve_by_ms is not None and order.approve_by_ms < now:
                await self._expire(order_id)
            return
        sites = [t.site for t in order.targets]
        ids = [r.command_id for t in order.targets for r in t.steps if r.command_id]
        readings = await self._readings(sites)
        states = await records.command_states(self.db, ids)
        async with records.locked(self.db, order_id) as (s, locked):
            now = records.now_ms()
            actions = advance(locked, readings, states, now, self.cfg)
            for site, posture in actions.postures:
                await records.set_posture(
                    s,
                    site,
                    posture,
                    order_id=locked.id,
                    kind=locked.kind,
                    exercise=locked.exercise,
                    now=now,
                )
            actor = locked.approved_by or locked.requested_by
            state = locked.state
        await self._carry_out(order_id, actor, actions)
        if state == OrderState.COMPLETED:
            log.info("conversions: %s completed (%s)", order_id, locked.detail)

    async def _readings(self, sites: list[str]) -> Mapping[str, Readings]:
        out: dict[str, Readings] = {}
        for site in sites:
            try:
                latest = await self.store.latest(site)
            except (ShelterwatchError, OSError) as exc:
                log.warning("conversions: no telemetry of %s this sweep: %s", site, exc)
                continue
            out[site] = readings_of(latest, records.now_ms(), self.cfg.max_reading_age_s)
        return out

    async def _expire(self, order_id: str) -> None:
        async with records.locked(self.db, order_id) as (_s, order):
            if order.state != OrderState.PENDING_APPROVAL:
                return
            now = records.now_ms()
            order.state = OrderState.EXPIRED.value
            order.finished_ms = now
            order.updated_ms = now
            order.detail = "nobody approved it in time; nothing was done"
            for target in order.targets:
                for row in target.steps:
                    row.state = StepState.CANCELLED.value
            add_event(order, now, SERVICE_ACTOR, "expired", order.detail)
        await audit(self.db, SERVICE_ACTOR, "conversion.expired", order_id, {}, "expired")

    async def _carry_out(self, order_id: str, actor: str, actions: Actions) -> None:
        for send in actions.sends:
            await self._send(order_id, actor, send)
        for change in actions.alerts:
            await self._alert(change)
        for event, site, step, detail in actions.audits:
            params = {"site": site, "step": step, "detail": detail}
            await audit(self.db, SERVICE_ACTOR, f"conversion.{event}", order_id, params, event)
        if actions.postures:
            self.posture_wake.set()

    async def _send(self, order_id: str, actor: str, send: Send) -> None:
        cmd = send.command
        params: dict[str, Value] = {
            "point": cmd.point,
            "value": cmd.value,
            "verify_timeout_s": cmd.verify_timeout_s,
        }
        if cmd.verify_point is not None:
            params["verify_point"] = cmd.verify_point
            params["verify_value"] = cmd.verify_value if cmd.verify_value is not None else cmd.value
        try:
            record = await self.commands.send(
                send.gateway,
                cmd.device,
                "write",
                params,
                actor=f"{actor} (conversion {order_id})",
                ttl_s=self.cfg.command_ttl_s,
            )
        except Exception as exc:
            # Written again when the attempt's time is up (execution._drive).
            log.warning(
                "conversions: %s %s/%s: the write was not sent: %s; it is tried again in %g s",
                order_id,
                send.site,
                send.step,
                exc,
                self.cfg.command_ttl_s,
            )
            await self._set_step(send, detail=f"write not sent: {exc}")
            return
        await self._set_step(send, command_id=record.id)
        log.info(
            "conversions: %s %s/%s: wrote %s.%s=%s (attempt %d, command %s)",
            order_id,
            send.site,
            send.step,
            cmd.device,
            cmd.point,
            cmd.value,
            send.attempt,
            record.id,
        )

    async def _set_step(self, send: Send, **values: object) -> None:
        async with self.db.session() as s, s.begin():
            await s.execute(
                update(ConversionStep)
                .where(ConversionStep.id == send.step_row, ConversionStep.attempts == send.attempt)
                .values(**values)
            )

    async def _alert(self, change: AlertChange) -> None:
        now = records.now_ms()
        alert = Alert(
            active=change.active,
            ts=now,
            severity="major",
            message=change.message,
            raised_ts=now if change.active else None,
            kind="posture",
            point=change.point,
        )
        try:
            await record_event(
                self.db,
                change.site,
                alert_rule(change.step),
                change.device,
                alert,
                self.settings.alerts.webhooks,
            )
        except Exception:
            log.exception(
                "conversions: could not record the alert of %s/%s", change.site, change.step
            )
            return
        level = logging.WARNING if change.active else logging.INFO
        log.log(level, "conversions: %s", change.message)

    async def clear_regressions(self, order_id: str, steps: list[tuple[str, str, str]]) -> None:
        """Clear the alerts of steps still regressed when their order ends: (site, step,
        device)."""
        for site, step, device in steps:
            message = f"conversion {order_id} ended; {step} is no longer watched"
            await self._alert(AlertChange(site, step, device, "", False, message))
