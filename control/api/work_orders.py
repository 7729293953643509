"""Work orders: made by hand, from a degradation alert or for a programme item coming due;
started, closed with a note (audited) or cancelled (docs/maintenance.md).

Reading needs ``maintenance.read``; everything else ``maintenance.write`` (the maintainers
and above). An order belongs to the area of its site: a caller sees and works on the orders of
their own area only, and another area's order answers as if it did not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from control.api.deps import BAD_JSON, FORBIDDEN, UNAUTHORIZED, Allow, ScopeDep, StrictQuery
from control.api.maintenance import ANSWERS, http_error, maintenance_service
from control.areas import Scope
from control.auth import Permission, Principal
from control.maintenance import MaintenanceError, NotFound
from control.maintenance.models import (
    AlertWorkOrderRequest,
    WorkOrderClose,
    WorkOrderPublic,
    WorkOrderRequest,
    WorkOrderStart,
)
from shelterwatch.contract import SLUG_PATTERN

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/work-orders",
    tags=["work-orders"],
    dependencies=[StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)

Reader = Annotated[Principal, Allow(Permission.MAINTENANCE_READ)]
Maintainer = Annotated[Principal, Allow(Permission.MAINTENANCE_WRITE)]
OrderId = Annotated[str, Path(pattern=r"^wo-[0-9a-f]{12}$")]


async def _in_scope(request: Request, scope: Scope, order_id: str) -> None:
    """Another area's order answers exactly like one that does not exist."""
    try:
        order = await maintenance_service(request).get_order(order_id)
        if not scope.has_site(order.site):
            raise NotFound(f"no work order {order_id}")
    except MaintenanceError as exc:
        raise http_error(exc) from exc


@router.get("")
async def list_work_orders(
    _user: Reader,
    request: Request,
    scope: ScopeDep,
    site: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)] = None,
    state: Annotated[str | None, Query(pattern="^(open|in_progress|done|cancelled)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[WorkOrderPublic]:
    """Work orders of the caller's area, the earliest due first."""
    sites: list[str] | None = [site] if site else None
    if scope.sites is not None:
        sites = [s for s in (sites or sorted(scope.sites)) if s in scope.sites]
        if not sites:
            return []
    return await maintenance_service(request).orders(
        sites=sites, states=[state] if state else None, limit=limit
    )


@router.post("", status_code=status.HTTP_201_CREATED, responses={**BAD_JSON, **ANSWERS})
async def create_work_order(
    body: WorkOrderRequest | AlertWorkOrderRequest,
    user: Maintainer,
    request: Request,
    scope: ScopeDep,
) -> WorkOrderPublic:
    """A work order by hand (site and title, optionally a programme item), or for an alert
    (``alert_id``: one per alert, 409 after), in the caller's area."""
    try:
        if isinstance(body, WorkOrderRequest):
            if not scope.has_site(body.site):
                raise NotFound(f"no site {body.site!r}")
        elif not scope.unlimited:
            alert = await request.state.alerts.get(body.alert_id, scope)
            if alert is None:
                raise NotFound(f"no alert {body.alert_id}")
        return await maintenance_service(request).create_order(body, actor=user.username)
    except MaintenanceError as exc:
        raise http_error(exc) from exc


@router.get("/{order_id}", responses=ANSWERS)
async def get_work_order(
    order_id: OrderId, _user: Reader, request: Request, scope: ScopeDep
) -> WorkOrderPublic:
    await _in_scope(request, scope, order_id)
    try:
        return await maintenance_service(request).get_order(order_id)
    except MaintenanceError as exc:
        raise http_error(exc) from exc


@router.post("/{order_id}/start", responses={**BAD_JSON, **ANSWERS})
async def start_work_order(
    order_id: OrderId,
    body: WorkOrderStart,
    user: Maintainer,
    request: Request,
    scope: ScopeDep,
) -> WorkOrderPublic:
    """open → in_progress, optionally (re)assigned."""
    await _in_scope(request, scope, order_id)
    try:
        return await maintenance_service(request).start_order(
            order_id, actor=user.username, assignee=body.assignee
        )
    except MaintenanceError as exc:
        raise http_error(exc) from exc


@router.post("/{order_id}/close", responses={**BAD_JSON, **ANSWERS})
async def close_work_order(
    order_id: OrderId,
    body: WorkOrderClose,
    user: Maintainer,
    request: Request,
    scope: ScopeDep,
) -> WorkOrderPublic:
    """Done, with a closing note (audited). An order about a programme item records it done."""
    await _in_scope(request, scope, order_id)
    try:
        return await maintenance_service(request).close_order(
            order_id, actor=user.username, note=body.note
        )
    except MaintenanceError as exc:
        raise http_error(exc) from exc


@router.post("/{order_id}/cancel", responses={**BAD_JSON, **ANSWERS})
async def cancel_work_order(
    order_id: OrderId,
    body: WorkOrderClose,
    user: Maintainer,
    request: Request,
    scope: ScopeDep,
) -> WorkOrderPublic:
    """Cancelled, with the reason (audited)."""
    await _in_scope(request, scope, order_id)
    try:
        return await maintenance_service(request).cancel_order(
            order_id, actor=user.username, note=body.note
        )
    except MaintenanceError as exc:
        raise http_error(exc) from exc
