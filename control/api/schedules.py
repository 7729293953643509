"""Siren schedules: recurring silent tests and test-day programmes.

Reading is open to every role (``commands.read``). Writing depends on what the schedule
sounds: a programme of silent tests only needs a duty officer (``commands.operate``); any
audible test or drill needs a commander (``commands.approve``), for the schedule as it is and
as it would be after the change. The route admits duty officers; the service decides the rest
and answers 403 with the role needed.

``POST /preview`` takes the body of a create and answers what the schedule would do (its next
runs, each step's times, the targets it resolves to) and every problem, saving nothing;
create and update refuse exactly what preview reports, with the same messages (422, one error
per problem, ``loc`` pointing into the body).

Areas: a caller of a limited area sees and changes only the schedules whose sirens all lie
in their area (others answer 404 as if they did not exist), and may schedule only sirens
of their area (docs/schedules.md, "Areas and scope").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NoReturn

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from control.api.deps import (
    BAD_JSON,
    FORBIDDEN,
    UNAUTHORIZED,
    Allow,
    ErrorDetail,
    ScopeDep,
    StrictQuery,
)
from control.auth import Permission, Principal
from control.schedules import (
    ScheduleConflict,
    ScheduleCreate,
    ScheduleError,
    ScheduleExists,
    ScheduleFields,
    ScheduleForbidden,
    ScheduleInvalid,
    ScheduleNotFound,
    ScheduleService,
    SchedulesUnavailable,
)
from control.schedules.views import (
    Preview,
    RunReport,
    ScheduleDetail,
    SchedulePublic,
    TemplatePublic,
)
from shelterwatch.contract import SLUG_PATTERN

__all__ = ["router"]

_COMMON: dict[int | str, dict[str, Any]] = {401: UNAUTHORIZED, 403: FORBIDDEN}
schedules = APIRouter(
    prefix="/api/v1/schedules", tags=["schedules"], dependencies=[StrictQuery], responses=_COMMON
)
templates = APIRouter(
    prefix="/api/v1/schedule-templates",
    tags=["schedules"],
    dependencies=[StrictQuery],
    responses=_COMMON,
)
# One router for the app to include.
router = APIRouter()

Reader = Annotated[Principal, Allow(Permission.COMMANDS_READ)]
# The lowest role that may write any schedule; the service raises it for audible programmes.
Author = Annotated[Principal, Allow(Permission.COMMANDS_OPERATE)]
Name = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=64)]
RunState = Literal["claimed", "fired", "failed", "missed"]

_Responses = dict[int | str, dict[str, Any]]
_NOT_FOUND: _Responses = {404: {"description": "No such schedule", "model": ErrorDetail}}
_INVALID: _Responses = {422: {"description": "The schedule would not run as written (see preview)"}}
_CONFLICT: _Responses = {
    409: {"description": "Changed by someone else meanwhile", "model": ErrorDetail}
}
_UNAVAILABLE: _Responses = {
    503: {"description": "The audit trail did not take the change", "model": ErrorDetail}
}
_WRITE: _Responses = {**_NOT_FOUND, **_CONFLICT, **_UNAVAILABLE}


def _service(request: Request) -> ScheduleService:
    service: ScheduleService = request.state.schedules
    return service


def _refuse(exc: ScheduleError) -> NoReturn:
    if isinstance(exc, ScheduleInvalid):
        # FastAPI's own 422 shape, so clients read body problems and these the same way.
        raise RequestValidationError(
            [
                {"type": "value_error", "loc": ("body", *p.loc), "msg": p.msg, "input": None}
                for p in exc.problems
            ]
        ) from exc
    codes: list[tuple[type[ScheduleError], int]] = [
        (ScheduleNotFound, status.HTTP_404_NOT_FOUND),
        (ScheduleExists, status.HTTP_409_CONFLICT),
        (ScheduleConflict, status.HTTP_409_CONFLICT),
        (ScheduleForbidden, status.HTTP_403_FORBIDDEN),
        (SchedulesUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    ]
    for kind, code in codes:
        if isinstance(exc, kind):
            raise HTTPException(code, str(exc)) from exc
    raise exc


@schedules.get("")
async def list_schedules(_user: Reader, request: Request, scope: ScopeDep) -> list[SchedulePublic]:
    """Every schedule of the caller's area, by name, with its next run."""
    return await _service(request).list_schedules(scope=scope)


@schedules.post("/preview", responses=BAD_JSON)
async def preview_schedule(
    body: ScheduleCreate, _user: Author, request: Request, scope: ScopeDep
) -> Preview:
    """What the schedule would do, and every problem with it; nothing is saved."""
    return await _service(request).preview(body, scope=scope)


@schedules.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**BAD_JSON, **_INVALID, **_UNAVAILABLE, 409: _CONFLICT[409]},
)
async def create_schedule(
    body: ScheduleCreate, user: Author, request: Request, scope: ScopeDep
) -> SchedulePublic:
    try:
        return await _service(request).create(
            body, actor=user.username, role=user.role, scope=scope
        )
    except ScheduleError as exc:
        _refuse(exc)


@schedules.get("/{name}", responses=_NOT_FOUND)
async def get_schedule(
    _user: Reader, request: Request, scope: ScopeDep, name: Name
) -> ScheduleDetail:
    """The schedule with its next runs, step by step."""
    try:
        return await _service(request).get(name, scope=scope)
    except ScheduleError as exc:
        _refuse(exc)


@schedules.put("/{name}", responses={**BAD_JSON, **_INVALID, **_WRITE})
async def update_schedule(
    body: ScheduleFields, user: Author, request: Request, scope: ScopeDep, name: Name
) -> SchedulePublic:
    """Replace the schedule's fields (all of them: what is left out takes its default)."""
    try:
        return await _service(request).update(
            name, body, actor=user.username, role=user.role, scope=scope
        )
    except ScheduleError as exc:
        _refuse(exc)


@schedules.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=_WRITE)
async def delete_schedule(user: Author, request: Request, scope: ScopeDep, name: Name) -> Response:
    """Delete the schedule; its run reports are kept."""
    try:
        await _service(request).delete(name, actor=user.username, role=user.role, scope=scope)
    except ScheduleError as exc:
        _refuse(exc)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@schedules.post("/{name}/enable", responses={**_INVALID, **_WRITE})
async def enable_schedule(
    user: Author, request: Request, scope: ScopeDep, name: Name
) -> SchedulePublic:
    """Runs from now on; steps that fell due while it was disabled are not fired."""
    try:
        return await _service(request).set_enabled(
            name, True, actor=user.username, role=user.role, scope=scope
        )
    except ScheduleError as exc:
        _refuse(exc)


@schedules.post("/{name}/disable", responses=_WRITE)
async def disable_schedule(
    user: Author, request: Request, scope: ScopeDep, name: Name
) -> SchedulePublic:
    """No further step fires, including the rest of a run under way."""
    try:
        return await _service(request).set_enabled(
            name, False, actor=user.username, role=user.role, scope=scope
        )
    except ScheduleError as exc:
        _refuse(exc)


@schedules.get("/{name}/runs", responses=_NOT_FOUND)
async def schedule_runs(
    _user: Reader,
    request: Request,
    scope: ScopeDep,
    name: Name,
    state: RunState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[RunReport]:
    """The runs' steps, newest run first: fired (with the activation, whose own report says
    what each siren did), failed or missed, and why."""
    try:
        return await _service(request).runs(name, limit=limit, state=state, scope=scope)
    except ScheduleError as exc:
        _refuse(exc)


@templates.get("")
async def list_templates(_user: Reader, request: Request) -> list[TemplatePublic]:
    """Built-in programmes (test-day patterns A–E, the Monday silent test), to name as
    ``template`` in a schedule."""
    return _service(request).templates()


router.include_router(schedules)
router.include_router(templates)
