"""Activations: request (with a preview to confirm), read, approve, reject, cancel, report.

Who may request depends on the kind: a silent test needs ``commands.maintenance``; an
audible test, a drill or a live alert ``commands.operate``. A live alert is sent only after
a DIFFERENT person with ``commands.approve`` approves it within the approval window.
Cancelling needs the permission that starts the kind (commanders hold every one).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status

from control.api.deps import BAD_JSON, FORBIDDEN, UNAUTHORIZED, Allow, StrictQuery
from control.api.siren_errors import CONFLICT, NOT_FOUND, UNAVAILABLE, http_error, siren_service
from control.auth import Permission, Principal, allows
from control.sirens import KIND_PERMISSION, ActivationReport, ActivationState, SirenError
from control.sirens.models import (
    ActivationPublic,
    ActivationRequest,
    Decision,
    Preview,
    request_fields,
)
from control.sirens.reports import report_csv
from shelterwatch.contract import SLUG_PATTERN, SirenKind

__all__ = ["preview_router", "router"]

router = APIRouter(
    prefix="/api/v1/activations",
    tags=["sirens"],
    dependencies=[StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)

Reader = Annotated[Principal, Allow(Permission.SIRENS_READ)]
# The least any activation needs; the route then checks the kind's own permission.
Starter = Annotated[Principal, Allow(Permission.COMMANDS_MAINTENANCE)]
Approver = Annotated[Principal, Allow(Permission.COMMANDS_APPROVE)]
ActivationId = Annotated[str, Path(pattern=r"^act-[0-9a-f]{12}$")]
_REQUEST_ANSWERS: dict[int | str, dict[str, Any]] = {
    **BAD_JSON,
    **NOT_FOUND,
    **CONFLICT,
    **UNAVAILABLE,
}


def _may_start(user: Principal, kind: SirenKind) -> None:
    needed = KIND_PERMISSION[kind]
    if not allows(user.role, needed):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"a {kind.value} needs {needed.value}; you are {user.role.value}",
        )


# Its own path, not /activations/preview: under /activations/{id} a GET of "preview" would
# be taken for an activation id instead of answering 405.
preview_router = APIRouter(
    prefix="/api/v1/activation-previews",
    tags=["sirens"],
    dependencies=[StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)


@preview_router.post("", responses=_REQUEST_ANSWERS)
async def preview_activation(body: ActivationRequest, user: Starter, request: Request) -> Preview:
    """Every siren the request would reach, by gateway, with flagged ones marked, for a
    person to confirm. Sends and records nothing."""
    _may_start(user, body.kind)
    try:
        return await siren_service(request).preview(**request_fields(body))
    except SirenError as exc:
        raise http_error(exc) from exc


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=_REQUEST_ANSWERS)
async def request_activation(
    body: ActivationRequest, user: Starter, request: Request
) -> ActivationPublic:
    """202: recorded, and sent (a live alert: waiting for approval). The answer names every
    resolved target; follow it with GET /api/v1/activations/{id}."""
    _may_start(user, body.kind)
    try:
        return await siren_service(request).request(
            **request_fields(body), actor=user.username, reason=body.reason
        )
    except SirenError as exc:
        raise http_error(exc) from exc


@router.get("")
async def list_activations(
    _user: Reader,
    request: Request,
    state: ActivationState | None = None,
    kind: SirenKind | None = None,
    schedule: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)] = None,
    siren: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ActivationPublic]:
    """The newest first, with their targets (events: see each activation)."""
    return await siren_service(request).recent(
        state=state.value if state else None,
        kind=kind.value if kind else None,
        schedule=schedule,
        siren=siren,
        limit=limit,
    )


@router.get("/{activation_id}", responses=NOT_FOUND)
async def get_activation(
    _user: Reader, request: Request, activation_id: ActivationId
) -> ActivationPublic:
    try:
        return await siren_service(request).get(activation_id)
    except SirenError as exc:
        raise http_error(exc) from exc


@router.post("/{activation_id}/approve", responses={**BAD_JSON, **NOT_FOUND, **CONFLICT})
async def approve_activation(
    user: Approver, request: Request, activation_id: ActivationId, body: Decision | None = None
) -> ActivationPublic:
    """409 for your own request (two-person rule), or one not waiting for approval."""
    try:
        return await siren_service(request).approve(
            activation_id, actor=user.username, comment=body.comment if body else ""
        )
    except SirenError as exc:
        raise http_error(exc) from exc


@router.post("/{activation_id}/reject", responses={**BAD_JSON, **NOT_FOUND, **CONFLICT})
async def reject_activation(
    user: Approver, request: Request, activation_id: ActivationId, body: Decision | None = None
) -> ActivationPublic:
    try:
        return await siren_service(request).reject(
            activation_id, actor=user.username, comment=body.comment if body else ""
        )
    except SirenError as exc:
        raise http_error(exc) from exc


@router.post("/{activation_id}/cancel", responses={**BAD_JSON, **NOT_FOUND, **CONFLICT})
async def cancel_activation(
    user: Starter, request: Request, activation_id: ActivationId, body: Decision | None = None
) -> ActivationPublic:
    """Stops the signal at every siren (siren.cancel to every gateway involved); a live
    request not yet approved is withdrawn. 409 once it has ended."""
    try:
        return await siren_service(request).cancel(
            activation_id,
            actor=user.username,
            role=user.role,
            comment=body.comment if body else "",
        )
    except SirenError as exc:
        raise http_error(exc) from exc


@router.get(
    "/{activation_id}/report",
    responses={
        **NOT_FOUND,
        200: {"description": "The report", "content": {"text/csv": {"schema": {"type": "string"}}}},
    },
)
async def activation_report(
    _user: Reader,
    request: Request,
    activation_id: ActivationId,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> ActivationReport:
    """Every target with its outcome, detail and time taken, and the counts; as JSON, or as
    CSV (one row per siren) with ``format=csv``."""
    try:
        report = await siren_service(request).report(activation_id)
    except SirenError as exc:
        raise http_error(exc) from exc
    if format == "csv":
        return Response(  # type: ignore[return-value]
            report_csv(report),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{activation_id}.csv"'},
        )
    return report
