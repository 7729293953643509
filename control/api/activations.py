"""Activations: request (with a preview to confirm), read, approve, reject, cancel, report.

Who may request depends on the kind: a silent test needs ``commands.maintenance``; an
audible test, a drill or a live alert ``commands.operate``. A live alert is sent only after
a DIFFERENT person with ``commands.approve`` approves it within the approval window.
Cancelling needs the permission that starts the kind (commanders hold every one).

Every route also checks the caller's area (docs/sirens.md, "Areas and scope"): a siren
outside it is unknown; a group reaching beyond it is refused with how many sirens lie
outside and which area may act; an activation with no target in it does not exist for the
caller, and one with some shows only those. Approving, rejecting and cancelling answer for
every siren at once, so they need an area that holds all of them: escalation goes up.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from starlette.responses import JSONResponse
from starlette.routing import Route

from control.api.deps import BAD_JSON, FORBIDDEN, UNAUTHORIZED, Allow, ScopeDep, StrictQuery
from control.api.siren_errors import CONFLICT, NOT_FOUND, UNAVAILABLE, http_error, siren_service
from control.auth import Permission, Principal, allows
from control.cap import CapError
from control.capfeed import CapPrefill, CapUpload, Suggestion
from control.capfeed import request as request_from_cap
from control.capfeed import suggest as suggest_from_cap
from control.capfeed.models import SirenMatch, UpstreamCap
from control.sirens import KIND_PERMISSION, ActivationReport, ActivationState, SirenError
from control.sirens.models import (
    ActivationPublic,
    ActivationRequest,
    Decision,
    Preview,
    request_fields,
)
from control.sirens.reports import report_csv
from control.sirens.scoping import must_cover
from shelterwatch.contract import SLUG_PATTERN, SirenKind

__all__ = ["from_cap_other_methods", "preview_router", "router"]

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
# Upstream CAP asks for a live alert, a drill or an audible test: all need commands.operate.
CapReader = Annotated[Principal, Allow(Permission.COMMANDS_OPERATE)]
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
async def preview_activation(
    body: ActivationRequest, user: Starter, request: Request, scope: ScopeDep
) -> Preview:
    """Every siren the request would reach, by gateway, with flagged ones marked, for a
    person to confirm. Sends and records nothing."""
    _may_start(user, body.kind)
    try:
        return await siren_service(request).preview(**request_fields(body), scope=scope)
    except SirenError as exc:
        raise http_error(exc) from exc


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=_REQUEST_ANSWERS)
async def request_activation(
    body: ActivationRequest, user: Starter, request: Request, scope: ScopeDep
) -> ActivationPublic:
    """202: recorded, and sent (a live alert: waiting for approval). The answer names every
    resolved target; follow it with GET /api/v1/activations/{id}."""
    _may_start(user, body.kind)
    try:
        return await siren_service(request).request(
            **request_fields(body), actor=user.username, reason=body.reason, scope=scope
        )
    except SirenError as exc:
        raise http_error(exc) from exc


@router.post(
    "/from-cap",
    responses={
        **_REQUEST_ANSWERS,
        202: {"description": "The request was made (a live alert waits for approval)"},
        422: {
            "description": "Not CAP 1.2 we can act on (the reason names the line), no "
            "siren in its areas, or no signal to sound"
        },
    },
)
async def request_from_upstream_cap(
    body: CapUpload,
    user: CapReader,
    request: Request,
    response: Response,
    scope: ScopeDep,
    dry_run: bool = False,
) -> CapPrefill:
    """Pre-fill an activation request from an upstream authority's CAP 1.2 message: kind
    from its status (Actual: live, Exercise: drill, Test: audible test), signal from its
    event, targets from its areas, reason from its headline and description. With
    ``dry_run=true`` only says what it would request (200); otherwise makes the request (202),
    which for a live alert still needs a commander's approval. The same message twice: 409.
    403 when its areas reach sirens outside the caller's area (nothing about them is shown)."""
    settings = request.state.settings
    try:
        xml = body.xml.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"the XML is not valid Unicode: {exc}"
        ) from exc
    try:
        found = await suggest_from_cap(
            request.state.db,
            xml,
            language=settings.cap.language,
            signal=body.signal,
            visible=None if scope.unlimited else (lambda post: scope.has_site(post.site)),
        )
    except CapError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    _may_start(user, found.kind)
    sirens = siren_service(request)
    answer = _prefill(found, dry_run=dry_run)
    try:
        if not scope.unlimited:
            # Before the answer names any match: the upstream areas may cover neighbours.
            posts = await sirens.resolve(sirens=found.targets, groups=[])
            must_cover(scope, [p.site for p in posts], "the upstream message reaches")
        if dry_run:
            answer.preview = await sirens.preview(
                kind=found.kind,
                signal=found.signal,
                sirens=found.targets,
                groups=[],
                exercise=found.exercise,
                scope=scope,
            )
        else:
            answer.activation = await request_from_cap(
                request.state.db, sirens, found, xml, actor=user.username
            )
            response.status_code = status.HTTP_202_ACCEPTED
    except SirenError as exc:
        raise http_error(exc) from exc
    return answer


async def _from_cap_is_post_only(_request: Request) -> Response:
    return JSONResponse(
        {"detail": "Method Not Allowed"}, status.HTTP_405_METHOD_NOT_ALLOWED, {"Allow": "POST"}
    )


# A GET of /activations/from-cap would otherwise be taken for GET /activations/{id} and
# answer 422 for the id, where every other path answers 405. Added to the app before this
# router, it answers every method but POST; a plain Starlette route, so it is not an
# operation of the API (nor in its spec).
from_cap_other_methods = Route(
    "/api/v1/activations/from-cap",
    _from_cap_is_post_only,
    methods=["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"],
)


def _prefill(found: Suggestion, *, dry_run: bool) -> CapPrefill:
    cap = found.cap
    return CapPrefill(
        dry_run=dry_run,
        kind=found.kind,
        signal=found.signal,
        exercise=found.exercise,
        reason=found.reason,
        upstream=UpstreamCap(
            identifier=cap.identifier,
            sender=cap.sender,
            sent=cap.sent,
            status=cap.status.value,
            msg_type=cap.msg_type.value,
            event=cap.event,
            headline=cap.headline,
            areas=[a.description for a in cap.areas],
        ),
        matches=[
            SirenMatch(siren=m.siren, district=m.district, area=m.area, by=m.by)
            for m in found.matches
        ],
        targets=found.targets,
        needs_approval=found.kind is SirenKind.LIVE,
    )


@router.get("")
async def list_activations(
    _user: Reader,
    request: Request,
    scope: ScopeDep,
    state: ActivationState | None = None,
    kind: SirenKind | None = None,
    schedule: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)] = None,
    siren: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ActivationPublic]:
    """The newest first, with their targets (events: see each activation); those with a
    target in the caller's area, each showing only the targets there."""
    return await siren_service(request).recent(
        state=state.value if state else None,
        kind=kind.value if kind else None,
        schedule=schedule,
        siren=siren,
        limit=limit,
        scope=scope,
    )


@router.get("/{activation_id}", responses=NOT_FOUND)
async def get_activation(
    _user: Reader, request: Request, scope: ScopeDep, activation_id: ActivationId
) -> ActivationPublic:
    try:
        return await siren_service(request).get(activation_id, scope=scope)
    except SirenError as exc:
        raise http_error(exc) from exc


@router.post("/{activation_id}/approve", responses={**BAD_JSON, **NOT_FOUND, **CONFLICT})
async def approve_activation(
    user: Approver,
    request: Request,
    scope: ScopeDep,
    activation_id: ActivationId,
    body: Decision | None = None,
) -> ActivationPublic:
    """409 for your own request (two-person rule), or one not waiting for approval; 403
    when its sirens reach beyond your area (the answer names the area that may approve)."""
    try:
        return await siren_service(request).approve(
            activation_id, actor=user.username, comment=body.comment if body else "", scope=scope
        )
    except SirenError as exc:
        raise http_error(exc) from exc


@router.post("/{activation_id}/reject", responses={**BAD_JSON, **NOT_FOUND, **CONFLICT})
async def reject_activation(
    user: Approver,
    request: Request,
    scope: ScopeDep,
    activation_id: ActivationId,
    body: Decision | None = None,
) -> ActivationPublic:
    """As approving: 403 when its sirens reach beyond your area."""
    try:
        return await siren_service(request).reject(
            activation_id, actor=user.username, comment=body.comment if body else "", scope=scope
        )
    except SirenError as exc:
        raise http_error(exc) from exc


@router.post("/{activation_id}/cancel", responses={**BAD_JSON, **NOT_FOUND, **CONFLICT})
async def cancel_activation(
    user: Starter,
    request: Request,
    scope: ScopeDep,
    activation_id: ActivationId,
    body: Decision | None = None,
) -> ActivationPublic:
    """Stops the signal at every siren (siren.cancel to every gateway involved); a live
    request not yet approved is withdrawn. 409 once it has ended; 403 when its sirens reach
    beyond your area (it stops them all: the area that covers them cancels)."""
    try:
        return await siren_service(request).cancel(
            activation_id,
            actor=user.username,
            role=user.role,
            comment=body.comment if body else "",
            scope=scope,
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
    scope: ScopeDep,
    activation_id: ActivationId,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> ActivationReport:
    """Every target with its outcome, detail and time taken, and the counts; as JSON, or as
    CSV (one row per siren) with ``format=csv``."""
    try:
        report = await siren_service(request).report(activation_id, scope=scope)
    except SirenError as exc:
        raise http_error(exc) from exc
    if format == "csv":
        return Response(  # type: ignore[return-value]
            report_csv(report),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{activation_id}.csv"'},
        )
    return report
