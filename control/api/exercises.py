"""Exercises (演习): plan, start, inject situations, repair, end, time and report.

A commander (``commands.approve``) whose area covers every participating area plans an
exercise and names its director, a commander whose area covers them too; only the director
starts it, injects situations and ends it. Anyone who may read sites (``sites.read``) sees
the exercises their area takes part in (or lies in), and of those only the situations at
their own sites; everything else answers 404, as if it did not exist. A duty officer of a
site's area (``commands.operate``) may mark a situation's fault repaired.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status

from control.api.deps import (
    BAD_JSON,
    FORBIDDEN,
    UNAUTHORIZED,
    Allow,
    ErrorDetail,
    ScopeDep,
    StrictQuery,
    invalid_body,
)
from control.auth import Permission, Principal
from control.exercises import (
    AfterActionReport,
    Conflict,
    ExerciseCreate,
    ExerciseError,
    ExercisePublic,
    ExerciseService,
    InjectRequest,
    InvalidInput,
    NotAllowed,
    Note,
    NotFound,
    SituationKind,
    SituationPublic,
    SituationTiming,
    Unavailable,
    build_report,
    library,
    report_csv,
    report_html,
)
from shelterwatch.contract import SLUG_PATTERN

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/exercises",
    tags=["exercises"],
    dependencies=[StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)

Reader = Annotated[Principal, Allow(Permission.SITES_READ)]
Operator = Annotated[Principal, Allow(Permission.COMMANDS_OPERATE)]
Director = Annotated[Principal, Allow(Permission.COMMANDS_APPROVE)]
ExerciseId = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=64)]
SituationId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}\.[0-9]{1,6}$")]

ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "No such exercise or situation (or outside your area)",
        "model": ErrorDetail,
    },
    409: {"description": "The exercise's state does not allow it", "model": ErrorDetail},
    503: {"description": "The audit trail did not take the step", "model": ErrorDetail},
}
_STATUS: dict[type[ExerciseError], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    InvalidInput: status.HTTP_422_UNPROCESSABLE_CONTENT,
    Conflict: status.HTTP_409_CONFLICT,
    NotAllowed: status.HTTP_403_FORBIDDEN,
    Unavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}


def _service(request: Request) -> ExerciseService:
    return ExerciseService(request.state.db, request.state.settings)


def _http(exc: ExerciseError) -> Exception:
    if isinstance(exc, InvalidInput):
        # FastAPI's own 422 shape, so clients read these like every other body problem.
        return invalid_body(None, str(exc))
    return HTTPException(_STATUS.get(type(exc), status.HTTP_400_BAD_REQUEST), str(exc))


@router.get("/library")
async def situation_library(_user: Reader) -> list[SituationKind]:
    """The situations a director can inject, each with the simulator fault that plays it and
    what counts as detected, acknowledged, acted on and resolved."""
    return list(library().values())


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**BAD_JSON, **ANSWERS},
)
async def create_exercise(
    body: ExerciseCreate, user: Director, scope: ScopeDep, request: Request
) -> ExercisePublic:
    """Plan an exercise. Its ``id`` is its label, on everything it sends; it cannot change."""
    try:
        return await _service(request).create(body, actor=user, scope=scope)
    except ExerciseError as exc:
        raise _http(exc) from exc


@router.get("")
async def list_exercises(_user: Reader, scope: ScopeDep, request: Request) -> list[ExercisePublic]:
    """The exercises your area takes part in, or lies in; newest planned first."""
    return await _service(request).visible(scope)


@router.get("/{exercise_id}", responses=ANSWERS)
async def read_exercise(
    exercise_id: ExerciseId, _user: Reader, scope: ScopeDep, request: Request
) -> ExercisePublic:
    try:
        return await _service(request).read(exercise_id, scope)
    except ExerciseError as exc:
        raise _http(exc) from exc


@router.post("/{exercise_id}/start", responses={**BAD_JSON, **ANSWERS})
async def start_exercise(
    exercise_id: ExerciseId,
    user: Director,
    scope: ScopeDep,
    request: Request,
    body: Note | None = None,
) -> ExercisePublic:
    """The director starts it: from now its label is accepted on drills, tests and drill
    orders inside its areas."""
    try:
        return await _service(request).start(
            exercise_id, actor=user, scope=scope, comment=body.comment if body else ""
        )
    except ExerciseError as exc:
        raise _http(exc) from exc


@router.post("/{exercise_id}/end", responses={**BAD_JSON, **ANSWERS})
async def end_exercise(
    exercise_id: ExerciseId,
    user: Director,
    scope: ScopeDep,
    request: Request,
    body: Note | None = None,
) -> ExercisePublic:
    """The director ends it: situations nobody responded to are missed from now."""
    try:
        return await _service(request).end(
            exercise_id, actor=user, scope=scope, comment=body.comment if body else ""
        )
    except ExerciseError as exc:
        raise _http(exc) from exc


@router.post(
    "/{exercise_id}/situations",
    status_code=status.HTTP_201_CREATED,
    responses={**BAD_JSON, **ANSWERS},
)
async def inject_situations(
    exercise_id: ExerciseId,
    body: InjectRequest,
    user: Director,
    scope: ScopeDep,
    request: Request,
) -> list[SituationPublic]:
    """Inject a situation by kind and target, or ``random`` ones with a ``seed``. Each is
    audited, then sent to the simulator (``published`` says whether the broker took it)."""
    try:
        return await _service(request).inject(exercise_id, body, actor=user, scope=scope)
    except ExerciseError as exc:
        raise _http(exc) from exc


@router.get("/{exercise_id}/situations", responses=ANSWERS)
async def list_situations(
    exercise_id: ExerciseId, _user: Reader, scope: ScopeDep, request: Request
) -> list[SituationPublic]:
    """The situations injected at your sites, with the alerts labelled as theirs."""
    try:
        return await _service(request).situations(exercise_id, scope)
    except ExerciseError as exc:
        raise _http(exc) from exc


@router.post("/{exercise_id}/situations/{situation_id}/repair", responses=ANSWERS)
async def repair_situation(
    exercise_id: ExerciseId,
    situation_id: SituationId,
    user: Operator,
    scope: ScopeDep,
    request: Request,
) -> SituationPublic:
    """The fault is fixed: the simulator repairs it, and the situation is resolved now."""
    try:
        return await _service(request).repair(exercise_id, situation_id, actor=user, scope=scope)
    except ExerciseError as exc:
        raise _http(exc) from exc


@router.get("/{exercise_id}/timings", responses=ANSWERS)
async def situation_timings(
    exercise_id: ExerciseId, _user: Reader, scope: ScopeDep, request: Request
) -> list[SituationTiming]:
    """Per situation at your sites: detected, acknowledged, acted on, resolved (who, which
    area, the audit row), and whether it was missed."""
    try:
        return await _service(request).timings(exercise_id, scope)
    except ExerciseError as exc:
        raise _http(exc) from exc


@router.get(
    "/{exercise_id}/report",
    responses={
        **ANSWERS,
        200: {
            "description": "The after-action report",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
        },
    },
)
async def exercise_report(
    exercise_id: ExerciseId,
    _user: Reader,
    scope: ScopeDep,
    request: Request,
    format: Annotated[str, Query(pattern="^(json|csv|html)$")] = "json",
    table: Annotated[str, Query(pattern="^(situations|areas)$")] = "situations",
) -> AfterActionReport:
    """The after-action report of what your area may see: each situation's timings, the
    missed ones, and the participating areas compared (mean and median times).
    ``format=csv``: one row per situation (``table=areas``: per area); ``format=html``: the
    page to print or save as PDF."""
    service = _service(request)
    try:
        row = await service.exercise_row(exercise_id, scope)
        situations = await service.timings_for_report(row, scope)
    except ExerciseError as exc:
        raise _http(exc) from exc
    report = build_report(row, situations, scope.tree, scope.has_area)
    if format == "csv":
        return Response(  # type: ignore[return-value]
            report_csv(report, table),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{exercise_id}-{table}.csv"'},
        )
    if format == "html":
        zone = request.state.settings.sirens.timezone
        return Response(report_html(report, zone), media_type="text/html; charset=utf-8")  # type: ignore[return-value]
    return report
