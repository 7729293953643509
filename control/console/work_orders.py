"""The work-order pages: a list (filtered by state and site, overdue ones marked) and one
order with its history, where a maintainer closes it with a note.

As on the other pages, closing is console.js's call to the JSON API
(``POST /api/v1/work-orders/{id}/close``): the same permission, audit row and state rules as
any other client. The history is the order's own rows of the audit trail (created, started,
closed, cancelled), which the order's readers may see without reading the whole trail.

An order belongs to the area of its site: the list holds only the caller's area's orders,
and another area's order answers 404 in the words of one that does not exist.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from control.api.deps import Allow
from control.api.maintenance import http_error, maintenance_service
from control.auth import Permission, Principal
from control.console.render import render
from control.console.scope import CallerScope
from control.db import AuditEntry
from control.maintenance import MaintenanceError, NotFound
from control.maintenance.service import OPEN_STATES
from shelterwatch.contract import SLUG_PATTERN

__all__ = ["router"]

router = APIRouter()

Reader = Annotated[Principal, Allow(Permission.MAINTENANCE_READ)]
State = Literal["open", "in_progress", "done", "cancelled"]
STATES: tuple[State, ...] = ("open", "in_progress", "done", "cancelled")
_LIMIT = 500


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _said(params: str) -> dict[str, str]:
    """The note and assignee an audit row recorded, as text ("" when it has none)."""
    try:
        data: Any = json.loads(params)
    except ValueError:
        return {"note": "", "assignee": ""}
    if not isinstance(data, dict):
        return {"note": "", "assignee": ""}
    return {
        "note": str(data.get("note") or data.get("title") or ""),
        "assignee": str(data.get("assignee") or ""),
    }


@router.get("/work-orders")
async def work_orders_page(
    request: Request,
    user: Reader,
    scope: CallerScope,
    state: Literal["active", "open", "in_progress", "done", "cancelled", "all"] = "active",
    site: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)] = None,
) -> Response:
    """State ``active`` (the default) is what is still to do: open and in progress."""
    states: list[str] | None = {"active": list(OPEN_STATES), "all": None}.get(state, [state])
    sites: list[str] | None
    if site:
        # A site outside the area filters to nothing, as a site without orders does.
        sites = [site] if scope.has_site(site) else []
    else:
        sites = None if scope.sites is None else sorted(scope.sites)
    orders = await maintenance_service(request).orders(sites=sites, states=states, limit=_LIMIT)
    return render(
        request,
        "work_orders",
        {
            "orders": orders,
            "state": state,
            "site": site or "",
            "states": STATES,
            "open_states": OPEN_STATES,
            "now_ms": _now_ms(),
        },
        user=user,
    )


@router.get("/work-orders/{order_id}")
async def work_order_page(
    request: Request,
    user: Reader,
    scope: CallerScope,
    order_id: Annotated[str, Path(pattern=r"^wo-[0-9a-f]{12}$")],
) -> Response:
    service = maintenance_service(request)
    try:
        order = await service.get_order(order_id)
        if not scope.has_site(order.site):
            # The service's own words for an unknown id.
            raise NotFound(f"no work order {order_id}")
    except MaintenanceError as exc:
        raise http_error(exc) from exc
    # The trail's targets are "<order id> <site>" (MaintenanceService._move, create_order).
    query = (
        select(AuditEntry)
        .where(
            AuditEntry.action.like("work\\_orders.%", escape="\\"),
            AuditEntry.target == f"{order.id} {order.site}",
        )
        .order_by(AuditEntry.seq)
    )
    async with service.db.session() as s:
        rows = list(await s.scalars(query))
    history = [
        {
            "ts_ms": r.ts_ms,
            "actor": r.actor,
            "action": r.action.removeprefix("work_orders."),
            "seq": r.seq,
            **_said(r.params),
        }
        for r in rows
    ]
    item = service.programme.item(order.item) if order.item else None
    return render(
        request,
        "work_order",
        {
            "o": order,
            "item": item,
            "history": history,
            "open_states": OPEN_STATES,
            "now_ms": _now_ms(),
        },
        user=user,
    )
