"""Conversion plans: the checklists orders run. Read only: plans are reviewed YAML kept
with the settings (``conversions.plans_dir``), loaded and checked at start.

No area scope here, on purpose: a plan is configuration shared by every area, the same
checklist for every shelter of its type, with no orders, people, readings or states in it.
Every level needs to read the plans it may be ordered to run, and nothing a plan holds
changes with what happens in an area. (A plan that overrides the default names the sites it
is for; those are configured names, not activity.)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from control.api.conversions import ANSWERS, conversion_service, http_error
from control.api.deps import FORBIDDEN, UNAUTHORIZED, Allow, StrictQuery
from control.auth import Permission, Principal
from control.conversions import ConversionError, PlanPublic
from shelterwatch.contract import SLUG_PATTERN

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/conversion-plans",
    tags=["conversions"],
    dependencies=[StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)

Reader = Annotated[Principal, Allow(Permission.SITES_READ)]


@router.get("")
async def list_plans(_user: Reader, request: Request) -> list[PlanPublic]:
    """Every plan, with its version, content hash and steps in checklist order."""
    return conversion_service(request).plans()


@router.get("/{name}", responses=ANSWERS)
async def get_plan(
    name: Annotated[str, Path(pattern=SLUG_PATTERN)], _user: Reader, request: Request
) -> PlanPublic:
    try:
        return conversion_service(request).plan(name)
    except ConversionError as exc:
        raise http_error(exc) from exc
