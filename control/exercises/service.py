"""The exercise service: plan, start, inject, repair, end, and time each area's response.

Made per request from the database and settings (it keeps no state of its own between
requests), so any replica answers for any exercise. Every step is audited before it is
taken, with the exercise id in the audit row's params; an inject's audit row is the moment
its timings are measured from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from control.areas import AreaTree, Scope
from control.audit import append_audit
from control.auth import Principal, Role
from control.db import AuditEntry, Database, Exercise, ExerciseSituation, SirenPost, User
from control.exercises import records
from control.exercises.errors import Conflict, InvalidInput, NotAllowed, NotFound, Unavailable
from control.exercises.injects import Draw, draw, publish_inject
from control.exercises.library import SituationKind, library
from control.exercises.models import (
    ExerciseCreate,
    ExercisePublic,
    InjectRequest,
    SituationPublic,
    SituationTiming,
)
from control.exercises.timing import timings
from control.settings import ControlSettings
from shelterwatch.sim_inject import SimInject

__all__ = ["ExerciseService", "visible_to"]


def visible_to(scope: Scope, areas: Iterable[str]) -> bool:
    """Whether the exercise's participating ``areas`` meet the caller's scope: an area of
    theirs takes part, or their own area lies inside one that does."""
    if scope.unlimited:
        return True
    assert scope.area is not None
    tree = scope.tree
    return any(
        code in tree.areas and (tree.covers(scope.area, code) or tree.covers(code, scope.area))
        for code in areas
    )


class ExerciseService:
    def __init__(self, db: Database, settings: ControlSettings) -> None:
        self.db = db
        self.settings = settings

    @staticmethod
    def kinds() -> dict[str, SituationKind]:
        return library()

    # -- the exercise --------------------------------------------------------------------------

    async def create(
        self, body: ExerciseCreate, *, actor: Principal, scope: Scope
    ) -> ExercisePublic:
        tree = scope.tree
        if tree.empty:
            raise InvalidInput("no area tree is imported: exercises take part in areas")
        for code in body.areas:
            if code not in tree.areas or not scope.has_area(code):
                raise NotFound(f"no area {code!r}")
        director = await self._user(body.director)
        if director is None or not director.active:
            raise InvalidInput(f"no active user {body.director!r} to direct the exercise")
        if not Role(director.role).at_least(Role.COMMANDER):
            raise InvalidInput(
                f"{body.director} is {director.role}: an exercise's director is a commander"
            )
        director_scope = Scope(tree, director.area)
        uncovered = [code for code in body.areas if not director_scope.has_area(code)]
        if uncovered:
            raise InvalidInput(
                f"{body.director}'s area ({director.area}) does not cover "
                f"{', '.join(uncovered)}: the director's area must cover every "
                "participating area"
            )
        if await records.get(self.db, body.id) is not None:
            raise Conflict(f"an exercise {body.id} exists already: its id is its label")
        areas = sorted(body.areas)
        await self._audit(
            actor.username,
            "exercise.create",
            body.id,
            {
                "exercise": body.id,
                "name": body.name,
                "areas": areas,
                "director": body.director,
                "planned_start_ms": body.planned_start_ms,
                "planned_end_ms": body.planned_end_ms,
            },
            "planned",
        )
        now = records.now_ms()
        row = Exercise(
            id=body.id,
            name=body.name,
            scenario=body.scenario,
            areas=json.dumps(areas),
            director=body.director,
            state="planned",
            planned_start_ms=body.planned_start_ms,
            planned_end_ms=body.planned_end_ms,
            created_by=actor.username,
            created_ms=now,
            updated_ms=now,
        )
        try:
            async with self.db.session() as s, s.begin():
                s.add(row)
        except IntegrityError as exc:
            raise Conflict(f"an exercise {body.id} exists already: its id is its label") from exc
        return records.exercise_public(row, 0)

    async def visible(self, scope: Scope) -> list[ExercisePublic]:
        rows = [
            r for r in await records.list_all(self.db) if visible_to(scope, records.areas_of(r))
        ]
        counts = await self._counts([r.id for r in rows])
        return [records.exercise_public(r, counts.get(r.id, 0)) for r in rows]

    async def read(self, exercise_id: str, scope: Scope) -> ExercisePublic:
        row = await self._visible(exercise_id, scope)
        counts = await self._counts([row.id])
        return records.exercise_public(row, counts.get(row.id, 0))

    async def start(
        self, exercise_id: str, *, actor: Principal, scope: Scope, comment: str = ""
    ) -> ExercisePublic:
        row = await self._directed(exercise_id, actor, scope)
        if row.state != "planned":
            raise Conflict(f"exercise {exercise_id} is {row.state}; only a planned one starts")
        entry = await self._audit(
            actor.username,
            "exercise.start",
            exercise_id,
            {"exercise": exercise_id, "comment": comment},
            "running",
        )
        await self._move(exercise_id, "planned", "running", started_ms=entry.ts_ms)
        return await self.read(exercise_id, scope)

    async def end(
        self, exercise_id: str, *, actor: Principal, scope: Scope, comment: str = ""
    ) -> ExercisePublic:
        row = await self._directed(exercise_id, actor, scope)
        if row.state != "running":
            raise Conflict(f"exercise {exercise_id} is {row.state}; only a running one ends")
        entry = await self._audit(
            actor.username,
            "exercise.end",
            exercise_id,
            {"exercise": exercise_id, "comment": comment},
            "ended",
        )
        await self._move(exercise_id, "running", "ended", ended_ms=entry.ts_ms)
        ended = await records.get(self.db, exercise_id)
        if ended is not None:
            situations = await records.situations_of(self.db, exercise_id)
            await records.link_alerts(self.db, ended, situations, library(), entry.ts_ms)
        return await self.read(exercise_id, scope)

    # -- situations ----------------------------------------------------------------------------

    async def inject(
        self, exercise_id: str, body: InjectRequest, *, actor: Principal, scope: Scope
    ) -> list[SituationPublic]:
        row = await self._directed(exercise_id, actor, scope)
        if row.state != "running":
            raise Conflict(f"exercise {exercise_id} is {row.state}: inject while it runs")
        tree = scope.tree
        areas = records.areas_of(row)
        kinds = library()
        if body.random:
            assert body.seed is not None
            draws = draw(body.seed, body.random, await self._candidates(tree, areas, kinds))
            if not draws:
                raise Conflict(f"exercise {exercise_id}'s areas have no site to inject at")
        else:
            assert body.kind is not None
            if body.kind not in kinds:
                known = ", ".join(kinds)
                raise InvalidInput(f"no situation kind {body.kind!r} (the library has {known})")
            kind = kinds[body.kind]
            target = body.siren if kind.target == "siren" else body.site
            if target is None:
                raise InvalidInput(f"a {body.kind} situation names its {kind.target}")
            draws = [Draw(body.kind, target, "chosen")]
        out: list[SituationPublic] = []
        for item in draws:
            out.append(await self._inject_one(row, tree, areas, kinds[item.kind], item, actor))
        return out

    async def repair(
        self, exercise_id: str, situation_id: str, *, actor: Principal, scope: Scope
    ) -> SituationPublic:
        """The fault is lifted: by the director, or by someone of the site's area who has
        fixed it. The simulator repairs it; the situation counts as resolved from now."""
        row = await self._visible(exercise_id, scope)
        situation = await self._situation(row, situation_id, scope)
        if actor.username != row.director and not Role(actor.role).at_least(Role.DUTY_OFFICER):
            raise NotAllowed("a repair is the director's, or a duty officer's of the site's area")
        if row.state == "planned":
            raise Conflict(f"exercise {exercise_id} has not started")
        if situation.repaired_ms is not None:
            raise Conflict(f"{situation_id} was repaired by {situation.repaired_by} already")
        entry = await self._audit(
            actor.username,
            "exercise.repair",
            situation_id,
            {"exercise": exercise_id, "situation": situation_id, "site": situation.site},
            "repaired",
        )
        async with self.db.session() as s, s.begin():
            result = await s.execute(
                update(ExerciseSituation)
                .where(
                    ExerciseSituation.id == situation_id,
                    ExerciseSituation.repaired_ms.is_(None),
                )
                .values(repaired_by=actor.username, repaired_ms=entry.ts_ms, repair_seq=entry.seq)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise Conflict(f"{situation_id} was repaired a moment ago")
        await self._publish(situation, "repair", entry.ts_ms)
        return await self._situation_public(row.id, situation_id)

    async def situations(self, exercise_id: str, scope: Scope) -> list[SituationPublic]:
        row = await self._visible(exercise_id, scope)
        await self._link(row)
        links = await records.alert_links(self.db, row.id)
        kinds = library()
        return [
            records.situation_public(s, kinds.get(s.kind), links.get(s.id, []))
            for s in await records.situations_of(self.db, row.id)
            if scope.has_site(s.site)
        ]

    async def timings(self, exercise_id: str, scope: Scope) -> list[SituationTiming]:
        row = await self._visible(exercise_id, scope)
        return await self._timings(row, scope)

    async def exercise_row(self, exercise_id: str, scope: Scope) -> Exercise:
        return await self._visible(exercise_id, scope)

    async def _timings(self, row: Exercise, scope: Scope) -> list[SituationTiming]:
        until = await self._link(row)
        situations = [
            s for s in await records.situations_of(self.db, row.id) if scope.has_site(s.site)
        ]
        links = await records.alert_links(self.db, row.id)
        return await timings(self.db, row, situations, links, library(), scope.tree, until)

    async def timings_for_report(self, row: Exercise, scope: Scope) -> list[SituationTiming]:
        return await self._timings(row, scope)

    # -- helpers -------------------------------------------------------------------------------

    async def _inject_one(
        self,
        row: Exercise,
        tree: AreaTree,
        areas: list[str],
        kind: SituationKind,
        item: Draw,
        actor: Principal,
    ) -> SituationPublic:
        site, gateway, device, siren = await self._target(tree, areas, kind, item.target)
        area = _response_area(tree, areas, site)
        async with self.db.session() as s:
            number = (
                await s.execute(
                    select(func.max(ExerciseSituation.number)).where(
                        ExerciseSituation.exercise_id == row.id
                    )
                )
            ).scalar() or 0
        number += 1
        situation_id = f"{row.id}.{number}"
        options = dict(kind.options)
        entry = await self._audit(
            actor.username,
            "exercise.inject",
            situation_id,
            {
                "exercise": row.id,
                "situation": situation_id,
                "kind": kind.kind,
                "site": site,
                "area": area,
                "siren": siren,
                "device": device,
                "fault": kind.fault,
                "origin": item.origin,
            },
            "injected",
        )
        situation = ExerciseSituation(
            id=situation_id,
            exercise_id=row.id,
            number=number,
            kind=kind.kind,
            site=site,
            area=area,
            gateway=gateway,
            device=device,
            siren=siren,
            fault=kind.fault,
            options=json.dumps(options, sort_keys=True),
            origin=item.origin,
            injected_by=actor.username,
            injected_ms=entry.ts_ms,
            inject_seq=entry.seq,
            published=False,
            publish_detail="",
        )
        try:
            async with self.db.session() as s, s.begin():
                s.add(situation)
        except IntegrityError as exc:
            raise Conflict(
                f"another inject into {row.id} took number {number} at the same moment; "
                "inject again"
            ) from exc
        await self._publish(situation, "inject", entry.ts_ms)
        return await self._situation_public(row.id, situation_id)

    async def _publish(self, situation: ExerciseSituation, action: str, ts: int) -> None:
        inject = SimInject(
            id=situation.id,
            exercise=situation.exercise_id,
            action=action,  # type: ignore[arg-type]
            site=situation.site,
            device=situation.device or None,
            scenario=situation.fault,
            options=json.loads(situation.options),
            ts=ts,
        )
        client_id = self.settings.command_client_id or "shelterwatch-control"
        problem = await publish_inject(self.settings.mqtt, inject, client_id)
        async with self.db.session() as s, s.begin():
            values: dict[str, object] = {"publish_detail": problem}
            if action == "inject":
                values["published"] = not problem
            elif problem:
                values["publish_detail"] = f"repair: {problem}"
            await s.execute(
                update(ExerciseSituation)
                .where(ExerciseSituation.id == situation.id)
                .values(**values)
            )

    async def _target(
        self, tree: AreaTree, areas: list[str], kind: SituationKind, target: str
    ) -> tuple[str, str, str, str]:
        """(site, gateway, device, siren) of a situation's target, which must lie in the
        exercise's areas."""
        if kind.target == "siren":
            async with self.db.session() as s:
                post = await s.get(SirenPost, target)
            if post is None or not _inside(tree, areas, post.site):
                raise InvalidInput(f"no siren post {target!r} in the exercise's areas")
            return post.site, post.gateway, post.device, post.id
        area = tree.areas.get(target)
        if area is None or area.level.value != "site" or not _inside(tree, areas, target):
            raise InvalidInput(f"no site {target!r} in the exercise's areas")
        gateway = area.gateways[0] if area.gateways else ""
        return target, gateway, kind.device or "", ""

    async def _candidates(
        self, tree: AreaTree, areas: list[str], kinds: dict[str, SituationKind]
    ) -> dict[str, list[str]]:
        sites = sorted({site for code in areas for site in tree.sites_under(code)})
        async with self.db.session() as s:
            posts = list(await s.scalars(select(SirenPost).where(SirenPost.site.in_(sites))))
        sirens = sorted(p.id for p in posts)
        return {name: (sirens if kind.target == "siren" else sites) for name, kind in kinds.items()}

    async def _link(self, row: Exercise) -> int:
        """Label the alerts the exercise has caused so far; returns the moment its timings
        run to (the end, or now)."""
        until = row.ended_ms if row.ended_ms is not None else records.now_ms()
        if row.state != "planned":
            situations = await records.situations_of(self.db, row.id)
            await records.link_alerts(self.db, row, situations, library(), until)
        return until

    async def _visible(self, exercise_id: str, scope: Scope) -> Exercise:
        row = await records.get(self.db, exercise_id)
        if row is None or not visible_to(scope, records.areas_of(row)):
            raise NotFound(f"no exercise {exercise_id}")
        return row

    async def _directed(self, exercise_id: str, actor: Principal, scope: Scope) -> Exercise:
        row = await self._visible(exercise_id, scope)
        if actor.username != row.director:
            raise NotAllowed(f"only the exercise's director ({row.director}) directs it")
        return row

    async def _situation(self, row: Exercise, situation_id: str, scope: Scope) -> ExerciseSituation:
        async with self.db.session() as s:
            situation = await s.get(ExerciseSituation, situation_id)
        if (
            situation is None
            or situation.exercise_id != row.id
            or not scope.has_site(situation.site)
        ):
            raise NotFound(f"no situation {situation_id} in exercise {row.id}")
        return situation

    async def _situation_public(self, exercise_id: str, situation_id: str) -> SituationPublic:
        async with self.db.session() as s:
            situation = await s.get(ExerciseSituation, situation_id)
        assert situation is not None
        links = await records.alert_links(self.db, exercise_id)
        return records.situation_public(
            situation, library().get(situation.kind), links.get(situation_id, [])
        )

    async def _counts(self, ids: list[str]) -> dict[str, int]:
        if not ids:
            return {}
        async with self.db.session() as s:
            query = (
                select(ExerciseSituation.exercise_id, func.count())
                .where(ExerciseSituation.exercise_id.in_(ids))
                .group_by(ExerciseSituation.exercise_id)
            )
            return {e: int(n) for e, n in (await s.execute(query)).all()}

    async def _user(self, username: str) -> User | None:
        async with self.db.session() as s:
            return (await s.scalars(select(User).where(User.username == username))).one_or_none()

    async def _move(self, exercise_id: str, before: str, after: str, **times: int) -> None:
        async with self.db.session() as s, s.begin():
            result = await s.execute(
                update(Exercise)
                .where(Exercise.id == exercise_id, Exercise.state == before)
                .values(state=after, updated_ms=records.now_ms(), **times)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise Conflict(f"exercise {exercise_id} changed state a moment ago")

    async def _audit(
        self, actor: str, action: str, target: str, params: dict[str, object], result: str
    ) -> AuditEntry:
        try:
            return await append_audit(
                self.db, actor=actor, action=action, target=target, params=params, result=result
            )
        except Exception as exc:
            raise Unavailable(
                f"the audit trail did not take {action}, so nothing was done: {exc!r}; "
                "check the control database and try again"
            ) from exc


def _inside(tree: AreaTree, areas: list[str], site: str) -> bool:
    return site in tree.areas and any(tree.covers(code, site) for code in areas)


def _response_area(tree: AreaTree, areas: list[str], site: str) -> str:
    """The deepest participating area holding ``site``: the area whose response is timed."""
    holding = [code for code in areas if tree.covers(code, site)]
    return max(holding, key=lambda code: len(tree.ancestors(code)))
