"""The siren runner: owns what runs on each siren, and answers for every siren of a command.

Per siren it holds at most one run. An activation arriving for a siren is, in this order:

1. ``failed`` when the device is unknown or not a siren controller;
2. ``cancelled`` when its activation was cancelled before it arrived (the cancel overtook it);
3. a **repeat** when the activation already ran or runs on that siren under another command
   id: it is not started again, and the siren's answer in the new command repeats the
   first run's outcome when it has one, with a detail saying so;
4. ``failed`` ("refused") when a run of an equal or higher kind (SIREN_PRIORITY) holds the
   siren; otherwise it preempts a lower one, which stops first and ends ``cancelled``;
5. run: as a silent test, a signal the controller plays, or a signal the gateway times.

Sirens start concurrently; the hub of each link serialises their requests, and different
links run in parallel. Runs belong to the runner, not to the MQTT session: they finish while
the uplink is down, and their acks wait in the gateway's ack queue.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.sirens.controllers import SirenController, controller_for
from gateway.sirens.ledger import ActivationLedger, LedgerEntry
from gateway.sirens.outcomes import GOOD, STATE_OF, summarize
from gateway.sirens.plays import (
    Result,
    RunControl,
    play_controller_timed,
    play_gateway_timed,
    silent_test,
)
from gateway.sirens.settings import SirenSettings
from shelterwatch.contract import (
    SIREN_PRIORITY,
    CommandAck,
    CommandRequest,
    CommandState,
    SignalSpec,
    SirenKind,
    SirenOutcome,
)

if TYPE_CHECKING:
    from gateway.commands import Target

__all__ = ["SirenRunner"]

log = logging.getLogger(__name__)

Persist = Callable[[Callable[[sqlite3.Connection], None]], Awaitable[None]]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _await(awaitable: Awaitable[Result]) -> Result:
    return await awaitable


@dataclass(eq=False)
class _Run:
    command_id: str
    activation: str
    kind: SirenKind
    siren: str
    control: RunControl
    previous: _Run | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: SirenOutcome | None = None
    detail: str = ""

    def request_stop(self, reason: str) -> None:
        if not self.control.stop.is_set():
            self.control.stop_reason = reason
            self.control.stop.set()


class SirenRunner:
    def __init__(
        self,
        targets: dict[str, Target],
        settings: SirenSettings,
        send_ack: Callable[[CommandAck], None],
        ledger: ActivationLedger | None = None,
        persist: Persist | None = None,
    ) -> None:
        self.settings = settings
        self._targets = targets
        self._send_ack = send_ack
        self.ledger = ledger or ActivationLedger()
        self._persist = persist
        self._controllers: dict[str, SirenController | str] = {
            device: controller_for(target, settings) for device, target in targets.items()
        }
        self._active: dict[str, _Run] = {}  # siren -> the run that holds it

    # -- acks -----------------------------------------------------------------------------------

    def _ack(self, cmd_id: str, state: CommandState, detail: str) -> None:
        self._send_ack(CommandAck(id=cmd_id, state=state, detail=detail, ts=_now_ms()))

    def _siren_ack(self, cmd_id: str, siren: str, outcome: SirenOutcome, detail: str) -> None:
        self._send_ack(
            CommandAck(
                id=cmd_id,
                state=STATE_OF[outcome],
                detail=detail,
                ts=_now_ms(),
                device=siren,
                outcome=outcome,
            )
        )

    async def _save(self, fn: Callable[[sqlite3.Connection], None]) -> None:
        if self._persist is None:
            return
        try:
            await self._persist(fn)
        except Exception as exc:  # the run goes on; only its memory across restarts is lost
            log.warning("could not record a siren run in the command cache: %s", exc)

    # -- activation -----------------------------------------------------------------------------

    async def activate(self, command: CommandRequest) -> None:
        """Run a ``siren.activate`` command to its final ack. Never raises."""
        order = command.siren
        assert order is not None
        sirens = list(dict.fromkeys(order.sirens))
        what = order.signal.name if order.signal is not None else str(order.kind)
        self._ack(command.id, CommandState.RUNNING, f"{what} on {len(sirens)} sirens")
        outcomes: dict[str, SirenOutcome] = {}
        waits: list[tuple[str, Awaitable[Result]]] = []
        loop = asyncio.get_running_loop()
        left_s = max(0.0, (command.expires - _now_ms()) / 1000)
        retry_until = loop.time() + min(self.settings.unreachable_after_s, max(left_s, 0.5))
        for siren in sirens:
            admitted = self._admit(command, siren, retry_until)
            if isinstance(admitted, tuple):
                outcome, detail = admitted
                outcomes[siren] = outcome
                self._siren_ack(command.id, siren, outcome, detail)
            else:
                waits.append((siren, admitted))
        tasks: dict[str, asyncio.Task[Result]] = {}
        async with asyncio.TaskGroup() as tg:
            for siren, coro in waits:
                tasks[siren] = tg.create_task(_await(coro), name=f"siren-{siren}-{command.id}")
        for siren, task in tasks.items():
            outcome, detail = task.result()
            outcomes[siren] = outcome
            self._siren_ack(command.id, siren, outcome, detail)
        state, detail = summarize(outcomes, self.ledger.cancelled_by(order.activation))
        log.info(
            "siren command %s (activation %s) %s: %s", command.id, order.activation, state, detail
        )
        self._ack(command.id, state, detail)

    def _admit(
        self, command: CommandRequest, siren: str, retry_until: float
    ) -> Result | Awaitable[Result]:
        """Decide synchronously what becomes of ``siren``: a final answer, or a run to await."""
        order = command.siren
        assert order is not None
        controller = self._controllers.get(siren)
        if controller is None:
            return SirenOutcome.FAILED, f"unknown device {siren!r} on this gateway"
        if isinstance(controller, str):
            return SirenOutcome.FAILED, controller
        cancelled_by = self.ledger.cancelled_by(order.activation)
        if cancelled_by is not None:
            return SirenOutcome.CANCELLED, (
                f"activation {order.activation} was cancelled by {cancelled_by} before it "
                "arrived; not sounded"
            )
        earlier = self.ledger.claim(order.activation, siren, command.id)
        if earlier is not None:
            return self._repeat(earlier)
        holder = self._active.get(siren)
        if holder is not None and SIREN_PRIORITY[holder.kind] >= SIREN_PRIORITY[order.kind]:
            del self.ledger.runs[(order.activation, siren)]  # refused: it never ran here
            return SirenOutcome.FAILED, (
                f"refused: activation {holder.activation} ({holder.kind}) holds this siren, and "
                f"a {order.kind} does not preempt it"
            )
        run = _Run(
            command.id,
            order.activation,
            order.kind,
            siren,
            RunControl(siren, lambda detail: None, retry_until),
            previous=holder,
        )
        run.control.started = lambda detail: self._siren_ack(
            command.id, siren, SirenOutcome.STARTED, detail
        )
        if holder is not None:
            holder.request_stop(f"preempted by activation {order.activation} ({order.kind})")
        self._active[siren] = run
        return self._execute(run, controller, order.signal)

    async def _repeat(self, earlier: LedgerEntry) -> Result:
        note = (
            f"activation {earlier.activation} already ran on this siren under command "
            f"{earlier.command_id}; not started again"
        )
        run = self._active.get(earlier.siren)
        if earlier.outcome is None and run is not None and run.activation == earlier.activation:
            await run.done.wait()
        if earlier.outcome is None:
            return SirenOutcome.FAILED, f"{note} (its run was cut short by a gateway restart)"
        return earlier.outcome, f"{note}: {earlier.outcome.value}: {earlier.detail}"

    async def _execute(self, run: _Run, ctl: SirenController, signal: SignalSpec | None) -> Result:
        entry = self.ledger.runs[(run.activation, run.siren)]
        await self._save(lambda db: ActivationLedger.save_run(db, entry))
        try:
            if run.previous is not None:
                await run.previous.done.wait()  # the preempted run switches the siren off first
            result = await self._play(run, ctl, signal)
        except Exception as exc:
            # Every siren gets an outcome, even when the gateway itself is at fault.
            log.exception("siren %s: unexpected error in activation %s", run.siren, run.activation)
            result = SirenOutcome.FAILED, f"gateway error: {exc!r}"
        finally:
            if self._active.get(run.siren) is run:
                del self._active[run.siren]
        run.outcome, run.detail = result
        self.ledger.finish(run.activation, run.siren, *result)
        run.done.set()
        await self._save(lambda db: ActivationLedger.save_run(db, entry))
        level = logging.INFO if result[0] in GOOD else logging.WARNING
        log.log(level, "siren %s, activation %s: %s (%s)", run.siren, run.activation, *result)
        return result

    async def _play(self, run: _Run, ctl: SirenController, signal: SignalSpec | None) -> Result:
        c = run.control
        if c.stop.is_set():
            return SirenOutcome.CANCELLED, f"{c.stop_reason} before it started"
        if run.kind is SirenKind.SILENT_TEST or signal is None:
            if run.kind is not SirenKind.SILENT_TEST:
                return SirenOutcome.FAILED, f"a {run.kind} needs a signal"
            return await silent_test(c, ctl)
        label = ctl.builtin_label(signal)
        if label is not None:
            s = self.settings
            return await play_controller_timed(
                c, ctl, signal, label, s.supervise_poll_s, s.end_tolerance_s
            )
        return await play_gateway_timed(c, ctl, signal)

    # -- cancel ---------------------------------------------------------------------------------

    async def cancel(self, command: CommandRequest, activation: str) -> None:
        """Run a ``siren.cancel`` command to its final ack. Never raises."""
        self.ledger.cancel(activation, command.id)
        await self._save(lambda db: ActivationLedger.save_cancel(db, activation, command.id))
        self._ack(command.id, CommandState.RUNNING, f"stopping activation {activation}")
        runs = [r for r in self._active.values() if r.activation == activation]
        if not runs:
            ran = sum(1 for (a, _s) in self.ledger.runs if a == activation)
            after = f"; it already ended on {ran} sirens" if ran else ""
            self._ack(
                command.id,
                CommandState.SUCCEEDED,
                f"nothing to cancel: activation {activation} is not running here{after} "
                "(remembered, so a late activation does not sound)",
            )
            return
        for run in runs:
            run.request_stop(f"cancelled by {command.id}")
        waiting = [asyncio.ensure_future(r.done.wait()) for r in runs]
        await asyncio.wait(waiting, timeout=self.settings.cancel_timeout_s)
        for w in waiting:
            w.cancel()
        # A run that ended on its own before the cancel reached it needs no stop.
        stopped = {SirenOutcome.CANCELLED, SirenOutcome.TEST_FAILED, *GOOD}
        bad = sorted(r.siren for r in runs if r.outcome not in stopped)
        if bad:
            self._ack(
                command.id,
                CommandState.FAILED,
                f"{len(bad)} of {len(runs)} sirens did not confirm the stop: {', '.join(bad)}",
            )
        else:
            self._ack(
                command.id,
                CommandState.SUCCEEDED,
                f"activation {activation} stopped on {len(runs)} sirens",
            )
