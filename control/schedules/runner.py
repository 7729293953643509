"""The runner: fires each due step of every enabled schedule, once, whichever replica sees it.

A pass looks at the clock, expands each enabled schedule's rule around now, and for every
step whose time has come and that nobody has claimed, inserts its ``schedule_runs`` row (the
claim; see records.py). The replica whose insert commits asks the siren service for the
activation and records the outcome: ``fired`` with the activation's id, or ``failed`` with the
reason. A step found more than ``grace`` after its time (the service was down, or the
database was) is not sounded late: its row says ``missed`` and why. Steps due before the
schedule was created, enabled or retimed, or more than ``lookback`` ago, are not its business.

Between passes the runner sleeps until the next step is due, at most ``poll_s`` (to see
schedules other replicas saved), and wakes at once when this replica changes a schedule.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from control.audit import append_audit
from control.db import Database
from control.db.schedule_models import ScheduleRecord, ScheduleRun
from control.schedules import records
from control.schedules.clock import Clock
from control.schedules.plan import Plan, RunStep, check
from control.schedules.ports import ActivationStarter, ProgrammeListener, ProgrammeRun
from shelterwatch.contract import SirenKind
from shelterwatch.signals import SignalDefinition

__all__ = ["ScheduleRunner", "actor_of", "from_ms", "ms"]

log = logging.getLogger(__name__)

# A siren service that does not answer within this long has failed the step (it is recorded;
# the step is not retried, so it cannot sound twice).
_FIRE_TIMEOUT_S = 30.0
# The programme listener (CAP) gets this long; the step has fired whatever it does.
_LISTENER_TIMEOUT_S = 10.0


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def actor_of(name: str) -> str:
    return f"schedule:{name}"


@dataclass(frozen=True)
class _Due:
    record: ScheduleRecord
    plan: Plan
    run: datetime
    step: RunStep


class ScheduleRunner:
    def __init__(
        self,
        db: Database,
        starter: ActivationStarter | None,
        signals: Mapping[str, SignalDefinition],
        *,
        clock: Clock,
        replica: str,
        grace: timedelta = timedelta(minutes=10),
        lookback: timedelta = timedelta(days=7),
        poll_s: float = 30.0,
        programmes: ProgrammeListener | None = None,
    ) -> None:
        self.db = db
        self.starter = starter
        self.programmes = programmes
        self.signals = signals
        self.clock = clock
        self.replica = replica
        self.grace = grace
        self.lookback = lookback
        self.poll = timedelta(seconds=poll_s)
        self._wake = asyncio.Event()
        # Schedules whose stored form no longer checks (a signal left the catalogue), logged
        # once per revision rather than on every pass.
        self._broken: set[tuple[int, int]] = set()

    def wake(self) -> None:
        """Look at the schedules again now (one was created or changed)."""
        self._wake.set()

    async def run_forever(self) -> None:
        failing = False
        while True:
            self._wake.clear()
            # Taken before the pass: if the clock moves during it, the sleep below returns
            # at once and the next pass sees the new time.
            now = self.clock.now()
            until = now + self.poll
            try:
                await self.run_due(now)
                upcoming = await self.next_due(now)
                if upcoming is not None:
                    until = min(until, upcoming)
                if failing:
                    log.info("schedules: the database is back; runs are being fired again")
                failing = False
            except (SQLAlchemyError, OSError) as exc:
                if not failing:
                    log.warning(
                        "schedules: cannot reach the database (%s); due steps wait, and are "
                        "recorded as missed if they are still waiting after the %s grace",
                        exc,
                        self.grace,
                    )
                failing = True
            await self.clock.sleep_until(until, self._wake)

    async def run_due(self, now: datetime | None = None) -> list[ScheduleRun]:
        """One pass: claim and settle every step due at ``now``. Returns the rows this
        replica claimed (fired, failed or missed)."""
        now = now or self.clock.now()
        due: list[_Due] = []
        for record in await records.enabled(self.db):
            due += await self._unclaimed(record, now)
        mine: list[ScheduleRun] = []
        to_fire: list[tuple[_Due, ScheduleRun]] = []
        for item in due:
            late = now - item.step.start
            missed = late > self.grace
            row = await records.claim(self.db, self._claim_values(item, now, missed, late))
            if row is None:
                continue  # another replica's claim committed first: it fires this step
            mine.append(row)
            if missed:
                await self._report(item, row)
            else:
                to_fire.append((item, row))
        if to_fire:
            async with asyncio.TaskGroup() as tg:
                for item, row in to_fire:
                    tg.create_task(self._fire(item, row), name=f"schedule-fire-{row.id}")
        return mine

    async def next_due(self, now: datetime) -> datetime | None:
        """When the next step of any enabled schedule is due, if within one poll."""
        soonest: datetime | None = None
        for record in await records.enabled(self.db):
            plan = self._plan(record, now)
            if plan is None:
                continue
            for run in plan.recurrence.occurrences(now - plan.length, now + self.poll):
                for step in plan.layout(run):
                    if step.start > now and (soonest is None or step.start < soonest):
                        soonest = step.start
        return soonest

    # -- one pass ------------------------------------------------------------------------------

    def _plan(self, record: ScheduleRecord, now: datetime) -> Plan | None:
        plan, problems = check(
            record.name, records.fields_of(record), self.signals, now=now, require_future=False
        )
        if plan is None:
            key = (record.id, record.revision)
            if key not in self._broken:
                self._broken.add(key)
                log.error(
                    "schedule %s does not run: %s. Fix it with PUT /api/v1/schedules/%s",
                    record.name,
                    "; ".join(p.text() for p in problems),
                    record.name,
                )
        return plan

    async def _unclaimed(self, record: ScheduleRecord, now: datetime) -> list[_Due]:
        plan = self._plan(record, now)
        if plan is None:
            return []
        window_start = max(from_ms(record.active_from_ms), now - self.lookback)
        if window_start > now:
            return []
        due = [
            _Due(record, plan, run, step)
            for run in plan.recurrence.occurrences(window_start - plan.length, now)
            for step in plan.layout(run)
            if window_start <= step.start <= now
        ]
        if not due:
            return []
        taken = await records.claimed_keys(self.db, record.id, min(ms(d.run) for d in due))
        return [d for d in due if (ms(d.run), d.step.step.number) not in taken]

    def _claim_values(
        self, item: _Due, now: datetime, missed: bool, late: timedelta
    ) -> dict[str, object]:
        detail = ""
        state = records.CLAIMED
        if missed:
            state = records.MISSED
            detail = (
                f"due at {item.step.start.astimezone(item.plan.zone).isoformat()}, first seen "
                f"{_span(late)} late, past the {_span(self.grace)} grace: not sounded late "
                "(the control service or its database was down then)"
            )
        return {
            "schedule_id": item.record.id,
            "schedule": item.record.name,
            "run_ts": ms(item.run),
            "step": item.step.step.number,
            "due_ts": ms(item.step.start),
            "kind": item.step.step.kind.value,
            "signal": item.step.step.signal,
            "state": state,
            "activation": None,
            "detail": detail,
            "claimed_by": self.replica,
            "claimed_ts": ms(now),
            "updated_ts": ms(now),
        }

    async def _fire(self, item: _Due, row: ScheduleRun) -> None:
        step = item.step.step
        name = item.record.name
        local_run = item.run.astimezone(item.plan.zone).isoformat()
        reason = (
            f"schedule {name} ({item.plan.title}): run {local_run}, step {step.number}/"
            f"{len(item.plan.steps)} {step.kind.value}" + (f" {step.signal}" if step.signal else "")
        )
        activation: str | None = None
        if self.starter is None:
            row.state = records.FAILED
            row.detail = "the siren service is not running in this control service"
        else:
            try:
                async with asyncio.timeout(_FIRE_TIMEOUT_S):
                    started = await self.starter.request(
                        kind=step.kind,
                        signal=step.signal,
                        sirens=list(item.plan.sirens),
                        groups=list(item.plan.groups),
                        actor=actor_of(name),
                        reason=reason,
                        schedule=name,
                        # A drill labels all it sends, so nothing in it passes for a live alert.
                        exercise=item.plan.title if step.kind is SirenKind.DRILL else None,
                    )
                activation = str(started.id)
                row.state = records.FIRED
                row.detail = f"activation {activation} started"
                if step.kind is SirenKind.AUDIBLE_TEST:
                    await self._tell_programme(item, activation)
            except TimeoutError:
                row.state = records.FAILED
                row.detail = f"the siren service did not answer within {_FIRE_TIMEOUT_S:g} s"
            except Exception as exc:
                # Whatever refused it (an unknown siren, the audit trail, a rule of the siren
                # service), the step is recorded as failed with the reason, never retried.
                row.state = records.FAILED
                row.detail = f"the siren service refused it: {exc}"
        row.activation = activation
        try:
            await records.finish(
                self.db, row.id, row.state, activation, row.detail, ms(self.clock.now())
            )
        except (SQLAlchemyError, OSError) as exc:
            # The claim stands (the step is not fired again); only its outcome is unrecorded.
            log.error(
                "schedule %s: step %d %s (%s) but its run row stays 'claimed': %s",
                name,
                step.number,
                row.state,
                row.detail,
                exc,
            )
        await self._report(item, row)

    async def _tell_programme(self, item: _Due, activation: str) -> None:
        if self.programmes is None:
            return
        run = ProgrammeRun(
            schedule=item.record.name,
            schedule_id=item.record.id,
            title=item.plan.title,
            run=item.run.astimezone(item.plan.zone),
            steps=tuple(
                (s.start.astimezone(item.plan.zone), s.step.signal)
                for s in item.plan.layout(item.run)
                if s.step.kind is SirenKind.AUDIBLE_TEST and s.step.signal is not None
            ),
            sirens=tuple(item.plan.sirens),
            groups=tuple(item.plan.groups),
            activation=activation,
            actor=actor_of(item.record.name),
        )
        try:
            async with asyncio.timeout(_LISTENER_TIMEOUT_S):
                await self.programmes.programme_fired(run)
        except Exception:
            # The sirens sound either way; the listener logs its own failures, this is a bug.
            log.exception("schedule %s: the programme listener failed", item.record.name)

    async def _report(self, item: _Due, row: ScheduleRun) -> None:
        level = logging.INFO if row.state == records.FIRED else logging.WARNING
        log.log(
            level,
            "schedule %s: run %s step %d (%s%s) %s: %s",
            item.record.name,
            item.run.astimezone(item.plan.zone).isoformat(),
            row.step,
            row.kind,
            f" {row.signal}" if row.signal else "",
            row.state,
            row.detail,
        )
        try:
            await append_audit(
                self.db,
                actor=actor_of(item.record.name),
                action="schedules.run",
                target=f"schedule:{item.record.name}",
                params={
                    "run": item.run.astimezone(item.plan.zone).isoformat(),
                    "step": row.step,
                    "kind": row.kind,
                    "signal": row.signal,
                    "activation": row.activation,
                    "detail": row.detail,
                },
                result=row.state,
            )
        except (SQLAlchemyError, OSError) as exc:
            # The run row holds the outcome; the trail missing it is worth an operator's look.
            log.error(
                "schedule %s: could not audit run step %d: %s", item.record.name, row.step, exc
            )


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        rest = f" {seconds % 60} s" if seconds % 60 else ""
        return f"{seconds // 60} min{rest}"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
