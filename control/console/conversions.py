"""The conversions page: a checklist board per open order, with its countdown, kept live by
the console's event stream (``conversion`` events, control/console/live.py). Actions (order,
approve, confirm a manual step with a note, cancel) are calls to the JSON API from
console.js, under the same permissions as any other client.

The board shows the orders with a shelter in the caller's area, each only as far as that
area reaches (the service's scoped view), and the postures of the area's sites."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from control.api.deps import Allow
from control.auth import Permission, Principal
from control.console.fleet import postures_of
from control.console.render import render
from control.console.scope import CallerScope
from control.conversions import ConversionService

__all__ = ["router"]

router = APIRouter()

Reader = Annotated[Principal, Allow(Permission.SITES_READ)]
# Finished orders shown under the open ones.
_RECENT = 10


@router.get("/conversions")
async def conversions_page(request: Request, user: Reader, scope: CallerScope) -> Response:
    service: ConversionService = request.state.conversions
    orders = await service.recent(limit=200, scope=scope)
    open_orders = [
        await service.get(o.id, scope) for o in orders if o.state in ("pending_approval", "running")
    ]
    finished = [o for o in orders if o.state not in ("pending_approval", "running")][:_RECENT]
    postures = await postures_of(request)
    levels = request.state.settings.conversions.levels
    return render(
        request,
        "conversions",
        {
            "open_orders": open_orders,
            "finished": finished,
            # Approving and cancelling act on every shelter of an order: offered only where
            # the caller's area holds the order's own (the API checks again).
            "whole": {o.id for o in open_orders if o.area is None or scope.has_area(o.area)},
            "postures": sorted((s, p) for s, p in postures.items() if scope.has_site(s)),
            "levels": sorted(levels.items()),
        },
        user=user,
    )
