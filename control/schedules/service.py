"""The schedule service: checked, audited changes to schedules, previews, and the runner.

Every change is audited before it is written (no change without its trace), with the
before and after of what changed, and written only over the revision it was checked against,
so two people editing one schedule cannot silently overwrite each other. Who may change a
schedule depends on what it sounds: silent tests only, a duty officer
(``commands.operate``); any audible test or drill, a commander (``commands.approve``), for the
schedule as it is and as it would be.

Where: a schedule is a standing order over its sirens, so it belongs to the area that holds
all of them. A caller of a limited area (``scope``) sees and changes only schedules whose
targets resolve, today, to sirens all inside their area; any other answers as if it did not
exist. A schedule they write may name only sirens of their area (another area's siren is
unknown to them, in the words of one that does not exist), and its groups must not reach
beyond it. ``scope`` None is the service itself (docs/schedules.md, "Areas and scope").
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Self
from zoneinfo import ZoneInfo

from control.areas import Scope
from control.audit import append_audit
from control.auth import MINIMUM_ROLE, Permission, Role, allows
from control.db import Database
from control.db.schedule_models import ScheduleRecord, ScheduleRun
from control.schedules import records
from control.schedules.clock import Clock, SystemClock
from control.schedules.errors import (
    ScheduleConflict,
    ScheduleExists,
    ScheduleForbidden,
    ScheduleInvalid,
    ScheduleNotFound,
    SchedulesUnavailable,
)
from control.schedules.plan import Plan, check, effective_programme, permission_for
from control.schedules.ports import ActivationStarter, ProgrammeListener
from control.schedules.programme import builtin_templates, time_programme
from control.schedules.runner import ScheduleRunner, from_ms, ms
from control.schedules.spec import Problem, ScheduleCreate, ScheduleFields
from control.schedules.views import (
    Preview,
    RunReport,
    ScheduleDetail,
    SchedulePublic,
    TargetCount,
    TemplatePublic,
    run_previews,
)
from shelterwatch.signals import SignalDefinition

__all__ = ["PREVIEW_RUNS", "ScheduleService"]

log = logging.getLogger(__name__)

PREVIEW_RUNS = 5
# Fields whose change moves the runs: steps due before such a change are not the new
# schedule's to fire or to report missed.
_TIMING = ("timezone", "rule", "starts", "programme", "template")


class _State(enum.Enum):
    NEW = 1
    OPEN = 2
    CLOSED = 3


def default_replica() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"[:128]


class ScheduleService:
    def __init__(
        self,
        db: Database,
        signals: Mapping[str, SignalDefinition],
        sirens: ActivationStarter | None,
        *,
        clock: Clock | None = None,
        grace_s: float = 600.0,
        poll_s: float = 30.0,
        replica: str | None = None,
        run: bool = True,
        programmes: ProgrammeListener | None = None,
    ) -> None:
        self.db = db
        self.signals = signals
        self.sirens = sirens
        self.clock: Clock = clock or SystemClock()
        self.runner = ScheduleRunner(
            db,
            sirens,
            signals,
            clock=self.clock,
            replica=replica or default_replica(),
            grace=timedelta(seconds=grace_s),
            poll_s=poll_s,
            programmes=programmes,
        )
        self._run = run
        self._state = _State.NEW
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state is not _State.NEW:
            raise RuntimeError("a ScheduleService opens once")
        self._state = _State.OPEN
        if self._run:
            self._task = asyncio.create_task(self.runner.run_forever(), name="schedule-runner")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._state = _State.CLOSED
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- reading --------------------------------------------------------------------------------

    async def list_schedules(self, *, scope: Scope | None = None) -> list[SchedulePublic]:
        now = self.clock.now()
        return [
            self._public(r, now)
            for r in await records.list_all(self.db)
            if await self._in_scope(r, scope)
        ]

    async def get(self, name: str, *, scope: Scope | None = None) -> ScheduleDetail:
        record = await self._record(name, scope)
        now = self.clock.now()
        public = self._public(record, now)
        plan = self._stored_plan(record, now)
        runs = plan.runs_after(now, PREVIEW_RUNS) if plan and record.enabled else []
        return ScheduleDetail(
            **public.model_dump(), next_runs=run_previews(plan, runs) if plan else []
        )

    async def runs(
        self, name: str, *, limit: int, state: str | None, scope: Scope | None = None
    ) -> list[RunReport]:
        if _limited(scope):
            # Runs of a deleted schedule have no targets left to place: the root's to read.
            record = await records.get(self.db, name)
            if record is None or not await self._in_scope(record, scope):
                raise ScheduleNotFound(f"no schedule {name}, and no runs recorded under that name")
        rows = await records.runs_of(self.db, name, limit=limit, state=state)
        if not rows and await records.get(self.db, name) is None:
            raise ScheduleNotFound(f"no schedule {name}, and no runs recorded under that name")
        zone = await self._zone_for(name)
        return [_report(row, zone) for row in rows]

    def templates(self) -> list[TemplatePublic]:
        out = []
        for template in builtin_templates().values():
            steps, _ = time_programme(template.programme, self.signals)
            out.append(
                TemplatePublic(
                    name=template.name,
                    title=template.title,
                    description=template.description,
                    rule=template.rule,
                    programme=list(template.programme),
                    programme_s=max((s.end_s for s in steps), default=0.0),
                )
            )
        return out

    # -- preview and changes --------------------------------------------------------------------

    async def preview(self, spec: ScheduleCreate, *, scope: Scope | None = None) -> Preview:
        """What ``create`` would check and the runs it would make; nothing is saved."""
        now = self.clock.now()
        plan, problems = check(spec.name, spec, self.signals, now=now)
        targets = await self._targets(spec.sirens, spec.groups, problems, scope)
        permission = permission_for(s.kind for s in effective_programme(spec))
        runs = plan.runs_after(now, PREVIEW_RUNS) if plan else []
        return Preview(
            valid=plan is not None and not problems,
            problems=problems,
            needs_role=MINIMUM_ROLE[permission].value,
            targets=targets,
            programme_s=plan.length.total_seconds() if plan else None,
            runs=run_previews(plan, runs) if plan else [],
        )

    async def create(
        self, spec: ScheduleCreate, *, actor: str, role: Role, scope: Scope | None = None
    ) -> SchedulePublic:
        self._authorise(role, permission_for(s.kind for s in effective_programme(spec)), "create")
        plan = await self._checked(spec.name, spec, scope)
        if await records.get(self.db, spec.name) is not None:
            raise ScheduleExists(f"a schedule named {spec.name} exists; change it with PUT")
        now = self.clock.now()
        values = {
            "name": plan.name,
            **_row(spec, plan),
            "active_from_ms": ms(now),
            "revision": 1,
            "created_ms": ms(now),
            "created_by": actor,
            "updated_ms": ms(now),
            "updated_by": actor,
        }
        after = _as_stored(values)
        await self._audit(actor, "schedules.create", plan.name, {"after": after}, "created")
        try:
            record = await records.insert(self.db, values)
        except ScheduleExists:
            await self._audit(actor, "schedules.create", plan.name, {}, "refused: name taken")
            raise
        log.info(
            "schedule %s created by %s: %s, %s (%s), %d step(s)",
            plan.name,
            actor,
            plan.title,
            plan.rule,
            plan.timezone,
            len(plan.steps),
        )
        self.runner.wake()
        return self._public(record, now)

    async def update(
        self,
        name: str,
        fields: ScheduleFields,
        *,
        actor: str,
        role: Role,
        scope: Scope | None = None,
    ) -> SchedulePublic:
        record = await self._record(name, scope)
        before_kinds = [s.kind for s in effective_programme(records.fields_of(record))]
        new_kinds = [s.kind for s in effective_programme(fields)]
        self._authorise(role, permission_for([*before_kinds, *new_kinds]), "change")
        plan = await self._checked(name, fields, scope)
        now = self.clock.now()
        values = _row(fields, plan)
        before = records.stored(record)
        after = _as_stored(values)
        changed = {
            k: {"before": before[k], "after": after[k]} for k in after if before[k] != after[k]
        }
        if not changed:
            return self._public(record, now)
        if any(k in changed for k in _TIMING) or ("enabled" in changed and plan.enabled):
            values["active_from_ms"] = ms(now)
        values |= {"updated_ms": ms(now), "updated_by": actor}
        await self._audit(
            actor,
            "schedules.update",
            name,
            {"changed": changed, "revision": record.revision},
            "updated",
        )
        updated = await records.update_if(self.db, name, record.revision, values)
        if updated is None:
            await self._audit(actor, "schedules.update", name, {}, "refused: changed meanwhile")
            raise ScheduleConflict(
                f"schedule {name} was changed by someone else meanwhile; read it again and "
                "repeat your change"
            )
        log.info("schedule %s changed by %s: %s", name, actor, ", ".join(sorted(changed)))
        self.runner.wake()
        return self._public(updated, now)

    async def set_enabled(
        self, name: str, enabled: bool, *, actor: str, role: Role, scope: Scope | None = None
    ) -> SchedulePublic:
        record = await self._record(name, scope)
        programme = effective_programme(records.fields_of(record))
        verb = "enable" if enabled else "disable"
        self._authorise(role, permission_for(s.kind for s in programme), verb)
        now = self.clock.now()
        if record.enabled == enabled:
            return self._public(record, now)
        if enabled:
            # A schedule switched back on must still be one that would be saved today.
            await self._checked(name, records.fields_of(record), scope)
        values: dict[str, Any] = {"enabled": enabled, "updated_ms": ms(now), "updated_by": actor}
        if enabled:
            values["active_from_ms"] = ms(now)
        await self._audit(
            actor,
            f"schedules.{verb}",
            name,
            {"changed": {"enabled": {"before": record.enabled, "after": enabled}}},
            f"{verb}d",
        )
        updated = await records.update_if(self.db, name, record.revision, values)
        if updated is None:
            raise ScheduleConflict(f"schedule {name} was changed meanwhile; try again")
        log.info("schedule %s %sd by %s", name, verb, actor)
        self.runner.wake()
        return self._public(updated, now)

    async def delete(
        self, name: str, *, actor: str, role: Role, scope: Scope | None = None
    ) -> None:
        record = await self._record(name, scope)
        programme = effective_programme(records.fields_of(record))
        self._authorise(role, permission_for(s.kind for s in programme), "delete")
        await self._audit(
            actor, "schedules.delete", name, {"before": records.stored(record)}, "deleted"
        )
        if not await records.delete_if(self.db, name, record.revision):
            raise ScheduleConflict(f"schedule {name} was changed meanwhile; read it and try again")
        log.info("schedule %s deleted by %s (its run reports are kept)", name, actor)

    # -- helpers --------------------------------------------------------------------------------

    def _authorise(self, role: Role, permission: Permission, verb: str) -> None:
        if allows(role, permission):
            return
        minimum = MINIMUM_ROLE[permission]
        what = (
            "sounds sirens (audible tests or drills)"
            if permission is Permission.COMMANDS_APPROVE
            else "runs silent tests"
        )
        raise ScheduleForbidden(
            f"this schedule {what}: to {verb} it needs the role {minimum.value} or higher; "
            f"you are {role.value}"
        )

    async def _checked(self, name: str, fields: ScheduleFields, scope: Scope | None) -> Plan:
        plan, problems = check(name, fields, self.signals, now=self.clock.now())
        await self._targets(fields.sirens, fields.groups, problems, scope)
        if plan is None or problems:
            raise ScheduleInvalid(problems)
        return plan

    async def _targets(
        self,
        sirens: list[str],
        groups: list[str],
        problems: list[Problem],
        scope: Scope | None = None,
    ) -> TargetCount:
        count = TargetCount(sirens=sirens, groups=groups, resolved=None)
        if not sirens and not groups:
            return count
        if self.sirens is None:
            count.detail = "not checked: the siren service is not running in this service"
            return count
        try:
            posts = await self.sirens.resolve(sirens=list(sirens), groups=list(groups))
        except ValueError as exc:
            problems.append(
                Problem(
                    loc=["sirens"] if sirens else ["groups"],
                    msg=f"{exc} (see GET /api/v1/sirens and /api/v1/siren-groups)",
                )
            )
            count.detail = str(exc)
            return count
        limited = _limited(scope)
        if limited is not None:
            placed = _placed(posts)
            hidden = sorted(i for i, site in placed if i in sirens and not _has(limited, site))
            if hidden:
                # The words of an unknown siren: another area's ids are not confirmed.
                msg = f"unknown sirens {', '.join(hidden)}: check the ids in GET /api/v1/sirens"
                problems.append(Problem(loc=["sirens"], msg=msg))
                count.detail = msg
                return count
            sites = [site for _, site in placed]
            outside = sum(1 for site in sites if not _has(limited, site))
            if outside:
                known = [site for site in sites if site is not None]
                needed = limited.escalation_area(known) or "the root"
                msg = (
                    f"the groups reach {outside} of {len(sites)} sirens outside your area "
                    f"({limited.area}): a user of area {needed} may schedule them"
                )
                problems.append(Problem(loc=["groups"], msg=msg))
                count.detail = msg
                return count
        count.resolved = len(posts)
        if not posts:
            problems.append(
                Problem(loc=["groups"], msg="the targets name no siren post today (empty groups)")
            )
        return count

    async def _record(self, name: str, scope: Scope | None = None) -> ScheduleRecord:
        record = await records.get(self.db, name)
        if record is None or not await self._in_scope(record, scope):
            raise ScheduleNotFound(f"no schedule {name} (GET /api/v1/schedules lists them)")
        return record

    async def in_scope(self, name: str, scope: Scope | None) -> bool:
        """Whether ``scope`` sees the schedule (for what belongs to it: its CAP messages)."""
        record = await records.get(self.db, name)
        return record is not None and await self._in_scope(record, scope)

    async def _in_scope(self, record: ScheduleRecord, scope: Scope | None) -> bool:
        limited = _limited(scope)
        if limited is None:
            return True
        if self.sirens is None:
            return False
        fields = records.fields_of(record)
        try:
            posts = await self.sirens.resolve(
                sirens=list(fields.sirens), groups=list(fields.groups)
            )
        except ValueError:
            # Targets gone since: nothing places it, so it is the root's.
            return False
        sites = [site for _, site in _placed(posts)]
        return bool(sites) and all(_has(limited, site) for site in sites)

    async def _zone_for(self, name: str) -> str | None:
        record = await records.get(self.db, name)
        return record.timezone if record else None

    async def _audit(
        self, actor: str, action: str, name: str, params: dict[str, Any], result: str
    ) -> None:
        try:
            await append_audit(
                self.db,
                actor=actor,
                action=action,
                target=f"schedule:{name}",
                params=params,
                result=result,
            )
        except Exception as exc:
            raise SchedulesUnavailable(
                f"the audit trail did not take the change, so it was not made: {exc!r}"
            ) from exc

    def _stored_plan(self, record: ScheduleRecord, now: datetime) -> Plan | None:
        plan, _ = check(
            record.name, records.fields_of(record), self.signals, now=now, require_future=False
        )
        return plan

    def _public(self, record: ScheduleRecord, now: datetime) -> SchedulePublic:
        fields = records.fields_of(record)
        plan, problems = check(record.name, fields, self.signals, now=now, require_future=False)
        upcoming = plan.runs_after(now, 1) if plan and record.enabled else []
        permission = permission_for(s.kind for s in effective_programme(fields))
        return SchedulePublic(
            name=record.name,
            title=record.title,
            enabled=record.enabled,
            timezone=record.timezone,
            rule=record.rule,
            starts=fields.starts or now.date(),
            sirens=fields.sirens,
            groups=fields.groups,
            programme=fields.programme,
            template=record.template,
            needs_role=MINIMUM_ROLE[permission].value,
            revision=record.revision,
            created_ts=record.created_ms,
            created_by=record.created_by,
            updated_ts=record.updated_ms,
            updated_by=record.updated_by,
            next_run=upcoming[0] if upcoming else None,
            problems=problems,
        )


def _limited(scope: Scope | None) -> Scope | None:
    return None if scope is None or scope.unlimited else scope


def _has(scope: Scope, site: str | None) -> bool:
    return site is not None and scope.has_site(site)


def _placed(posts: Sequence[object]) -> list[tuple[str | None, str | None]]:
    """Each resolved post's id and site. The siren service's posts carry both; anything
    else is placed nowhere, which only the root's people see (fail closed)."""
    out: list[tuple[str | None, str | None]] = []
    for post in posts:
        post_id, site = getattr(post, "id", None), getattr(post, "site", None)
        out.append(
            (post_id if isinstance(post_id, str) else None, site if isinstance(site, str) else None)
        )
    return out


def _row(fields: ScheduleFields, plan: Plan) -> dict[str, Any]:
    """The columns a schedule's fields set (its name, times and revision aside)."""
    return {
        "title": plan.title,
        "enabled": fields.enabled,
        "timezone": fields.timezone,
        "rule": plan.rule,
        "starts": plan.starts.isoformat(),
        "sirens": json.dumps(plan.sirens),
        "groups": json.dumps(plan.groups),
        # As written (gaps stay gaps), and the template's name rather than its copy.
        "programme": json.dumps(
            [s.model_dump(mode="json", exclude_none=True) for s in fields.programme]
        ),
        "template": fields.template,
    }


def _as_stored(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "title": values["title"],
        "enabled": values["enabled"],
        "timezone": values["timezone"],
        "rule": values["rule"],
        "starts": values["starts"],
        "sirens": json.loads(values["sirens"]),
        "groups": json.loads(values["groups"]),
        "programme": json.loads(values["programme"]),
        "template": values["template"],
    }


def _report(row: ScheduleRun, zone_name: str | None) -> RunReport:
    zone = ZoneInfo(zone_name) if zone_name else None
    run, due = from_ms(row.run_ts), from_ms(row.due_ts)
    if zone is not None:
        run, due = run.astimezone(zone), due.astimezone(zone)
    return RunReport(
        schedule=row.schedule,
        run=run,
        step=row.step,
        due=due,
        kind=row.kind,
        signal=row.signal,
        state=row.state,
        activation=row.activation,
        detail=row.detail,
        claimed_by=row.claimed_by,
        updated_ts=row.updated_ts,
    )
