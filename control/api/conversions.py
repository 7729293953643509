"""Conversion orders (平战转换): request, read, approve, confirm a manual step, cancel, report.

A duty officer (``commands.operate``) orders a drill, which starts at once, or requests a
real order, which waits for a commander (``commands.approve``) other than the requester.
Cancelling a real order needs ``commands.approve``; a drill ``commands.operate``.

Each within the caller's area (control/conversions/service.py): an order is visible for its
shelters in scope and not found without any; requesting needs every shelter in scope;
approving and cancelling need an area over every shelter of the order (403 names it).
"""

from __future__ import annotations

from typing import Annotated, Any

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
from control.conversions import (
    Confirmation,
    Conflict,
    ConversionError,
    ConversionReport,
    ConversionService,
    Decision,
    InvalidInput,
    NotAllowed,
    NotFound,
    OrderPublic,
    OrderRequest,
    Unavailable,
    report_csv,
    report_html,
)
from shelterwatch.contract import SLUG_PATTERN

__all__ = ["ANSWERS", "conversion_service", "http_error", "router"]

router = APIRouter(
    prefix="/api/v1/conversions",
    tags=["conversions"],
    dependencies=[StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)

Reader = Annotated[Principal, Allow(Permission.SITES_READ)]
Operator = Annotated[Principal, Allow(Permission.COMMANDS_OPERATE)]
Approver = Annotated[Principal, Allow(Permission.COMMANDS_APPROVE)]
OrderId = Annotated[str, Path(pattern=r"^conv-[0-9a-f]{12}$")]

ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such plan, order, shelter or step", "model": ErrorDetail},
    409: {"description": "The order's state does not allow it", "model": ErrorDetail},
    503: {"description": "Cannot act now (audit trail or commands)", "model": ErrorDetail},
}


def conversion_service(request: Request) -> ConversionService:
    service: ConversionService = request.state.conversions
    return service


def http_error(exc: ConversionError) -> Exception:
    if isinstance(exc, InvalidInput):
        # FastAPI's own 422 shape, so clients read body problems and these the same way.
        loc = ("body", exc.field) if exc.field else ("body",)
        return RequestValidationError(
            [{"type": "value_error", "loc": loc, "msg": str(exc), "input": None}]
        )
    codes: list[tuple[type[ConversionError], int]] = [
        (NotFound, status.HTTP_404_NOT_FOUND),
        (Conflict, status.HTTP_409_CONFLICT),
        (NotAllowed, status.HTTP_403_FORBIDDEN),
        (Unavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    ]
    code = next((c for t, c in codes if isinstance(exc, t)), 500)
    return HTTPException(code, str(exc))


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses={**BAD_JSON, **ANSWERS})
async def request_conversion(
    body: OrderRequest, user: Operator, request: Request, scope: ScopeDep
) -> OrderPublic:
    """202: recorded. A drill runs at once; a real order waits for a commander's approval.
    Follow it with GET /api/v1/conversions/{id}."""
    try:
        return await conversion_service(request).request(body, actor=user.username, scope=scope)
    except ConversionError as exc:
        raise http_error(exc) from exc


@router.get("")
async def list_conversions(
    _user: Reader,
    request: Request,
    scope: ScopeDep,
    state: Annotated[str | None, Query(pattern=r"^[a-z_]{1,24}$")] = None,
    kind: Annotated[str | None, Query(pattern="^(drill|real)$")] = None,
    site: Annotated[str | None, Query(pattern=SLUG_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[OrderPublic]:
    """The newest orders first (without their histories)."""
    return await conversion_service(request).recent(
        state=state, kind=kind, site=site, limit=limit, scope=scope
    )


@router.get("/{order_id}", responses=ANSWERS)
async def get_conversion(
    order_id: OrderId, _user: Reader, request: Request, scope: ScopeDep
) -> OrderPublic:
    """The order with every shelter's checklist (of the shelters in the caller's area), the
    countdown and the history."""
    try:
        return await conversion_service(request).get(order_id, scope)
    except ConversionError as exc:
        raise http_error(exc) from exc


@router.post("/{order_id}/approve", responses={**BAD_JSON, **ANSWERS})
async def approve_conversion(
    order_id: OrderId, body: Decision, user: Approver, request: Request, scope: ScopeDep
) -> OrderPublic:
    """A commander other than the requester, of an area over all its shelters, starts a real
    order."""
    try:
        return await conversion_service(request).approve(
            order_id, actor=user.username, comment=body.comment, scope=scope
        )
    except ConversionError as exc:
        raise http_error(exc) from exc


@router.post("/{order_id}/confirm", responses={**BAD_JSON, **ANSWERS})
async def confirm_step(
    order_id: OrderId, body: Confirmation, user: Operator, request: Request, scope: ScopeDep
) -> OrderPublic:
    """A person confirms a manual step of one shelter in their area with a note."""
    try:
        return await conversion_service(request).confirm(
            order_id,
            site=body.site,
            step=body.step,
            note=body.note,
            actor=user.username,
            scope=scope,
        )
    except ConversionError as exc:
        raise http_error(exc) from exc


@router.post("/{order_id}/cancel", responses={**BAD_JSON, **ANSWERS})
async def cancel_conversion(
    order_id: OrderId, body: Decision, user: Operator, request: Request, scope: ScopeDep
) -> OrderPublic:
    """Stop the order: open steps are cancelled, unfinished shelters return to the posture
    they had; nothing already done on the devices is undone (order a revert for that).
    It stops every shelter of the order, so the caller's area must cover them all."""
    try:
        return await conversion_service(request).cancel(
            order_id, actor=user.username, role=user.role, comment=body.comment, scope=scope
        )
    except ConversionError as exc:
        raise http_error(exc) from exc


@router.get(
    "/{order_id}/report",
    responses={
        **ANSWERS,
        200: {
            "description": "The report",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
        },
    },
)
async def conversion_report(
    order_id: OrderId,
    _user: Reader,
    request: Request,
    scope: ScopeDep,
    format: Annotated[str, Query(pattern="^(json|csv|html)$")] = "json",
) -> ConversionReport:
    """Time per step, who confirmed what, regressions, deadline met. ``format=csv``: one
    row per shelter and step; ``format=html``: the print-friendly page to file."""
    try:
        report = await conversion_service(request).report(order_id, scope)
    except ConversionError as exc:
        raise http_error(exc) from exc
    if format == "csv":
        return Response(  # type: ignore[return-value]
            report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{order_id}.csv"'},
        )
    if format == "html":
        zone = request.state.settings.sirens.timezone
        return Response(report_html(report, zone), media_type="text/html; charset=utf-8")  # type: ignore[return-value]
    return report
