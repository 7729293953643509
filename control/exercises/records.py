"""The exercise tables: reading and writing rows, and labelling the alerts an exercise caused."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from control.db import Database, Exercise, ExerciseAlert, ExerciseSituation
from control.db.models import AlertRecord
from control.exercises.library import SituationKind
from control.exercises.models import ExercisePublic, SituationPublic

__all__ = [
    "alert_links",
    "areas_of",
    "exercise_public",
    "get",
    "link_alerts",
    "list_all",
    "now_ms",
    "situation_public",
    "situations_of",
]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def areas_of(row: Exercise) -> list[str]:
    areas: list[str] = json.loads(row.areas)
    return areas


async def get(db: Database, exercise_id: str) -> Exercise | None:
    async with db.session() as s:
        return await s.get(Exercise, exercise_id)


async def list_all(db: Database) -> list[Exercise]:
    async with db.session() as s:
        query = select(Exercise).order_by(Exercise.planned_start_ms.desc(), Exercise.id)
        return list(await s.scalars(query))


async def situations_of(db: Database, exercise_id: str) -> list[ExerciseSituation]:
    async with db.session() as s:
        query = (
            select(ExerciseSituation)
            .where(ExerciseSituation.exercise_id == exercise_id)
            .order_by(ExerciseSituation.number)
        )
        return list(await s.scalars(query))


async def alert_links(db: Database, exercise_id: str) -> dict[str, list[int]]:
    """Situation id -> the alerts labelled as its, oldest first."""
    async with db.session() as s:
        query = (
            select(ExerciseAlert.situation_id, ExerciseAlert.alert_id)
            .where(ExerciseAlert.exercise_id == exercise_id)
            .order_by(ExerciseAlert.alert_id)
        )
        links: dict[str, list[int]] = {}
        for situation, alert in (await s.execute(query)).all():
            links.setdefault(situation, []).append(alert)
        return links


async def link_alerts(
    db: Database,
    exercise: Exercise,
    situations: Sequence[ExerciseSituation],
    kinds: Mapping[str, SituationKind],
    until_ms: int,
) -> int:
    """Label with the exercise every alert raised at a situation's site, by one of its kind's
    rules, between the situation's inject and ``until_ms`` (the exercise's end, or now).

    An alert goes to the latest situation injected before it was raised: two situations at
    one site are told apart by time. Labels are only ever added: a labelled alert keeps its
    label. Returns how many alerts were labelled now.
    """
    if not situations:
        return 0
    first = min(s.injected_ms for s in situations)
    sites = sorted({s.site for s in situations})
    async with db.session() as s:
        labelled = select(ExerciseAlert.alert_id)
        query = (
            select(AlertRecord)
            .where(
                AlertRecord.site.in_(sites),
                AlertRecord.raised_ts >= first,
                AlertRecord.raised_ts <= until_ms,
                AlertRecord.id.not_in(labelled),
            )
            .order_by(AlertRecord.id)
        )
        alerts = list(await s.scalars(query))
    added = 0
    for alert in alerts:
        owner: ExerciseSituation | None = None
        for situation in situations:
            kind = kinds.get(situation.kind)
            if (
                kind is not None
                and situation.site == alert.site
                and alert.rule in kind.alerts
                and situation.injected_ms <= alert.raised_ts
                and (owner is None or situation.injected_ms >= owner.injected_ms)
            ):
                owner = situation
        if owner is None:
            continue
        try:
            async with db.session() as s, s.begin():
                s.add(
                    ExerciseAlert(
                        exercise_id=exercise.id,
                        situation_id=owner.id,
                        alert_id=alert.id,
                        labelled_ms=now_ms(),
                    )
                )
            added += 1
        except IntegrityError:
            continue  # another request labelled it a moment ago
    return added


def exercise_public(row: Exercise, situations: int) -> ExercisePublic:
    return ExercisePublic(
        id=row.id,
        label=row.id,
        name=row.name,
        scenario=row.scenario,
        areas=areas_of(row),
        director=row.director,
        state=row.state,  # type: ignore[arg-type]
        planned_start_ms=row.planned_start_ms,
        planned_end_ms=row.planned_end_ms,
        started_ms=row.started_ms,
        ended_ms=row.ended_ms,
        created_by=row.created_by,
        created_ms=row.created_ms,
        updated_ms=row.updated_ms,
        situations=situations,
    )


def situation_public(
    row: ExerciseSituation, kind: SituationKind | None, alerts: list[int]
) -> SituationPublic:
    return SituationPublic(
        id=row.id,
        exercise=row.exercise_id,
        number=row.number,
        kind=row.kind,
        title_zh=kind.title_zh if kind else row.kind,
        title_en=kind.title_en if kind else row.kind,
        site=row.site,
        area=row.area,
        gateway=row.gateway,
        device=row.device,
        siren=row.siren,
        fault=row.fault,
        origin=row.origin,
        injected_by=row.injected_by,
        injected_ms=row.injected_ms,
        published=row.published,
        publish_detail=row.publish_detail,
        repaired_by=row.repaired_by,
        repaired_ms=row.repaired_ms,
        alerts=alerts,
    )
