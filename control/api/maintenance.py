"""Maintenance: the programme, each site's items (due, done, overdue, with evidence), a
person's confirmation with a note, readiness, and inspection reports (docs/maintenance.md).

Reading needs ``maintenance.read`` (viewer). Confirming an item and the sweep need
``maintenance.write``: the maintainer who does the work (and every role above). A caller
reaches the sites of their own area only; another area's site answers 404, and for a caller
whose area is not everywhere, so does a site the area tree does not place.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
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
from control.areas import CODE_PATTERN, Scope
from control.auth import Permission, Principal
from control.maintenance import (
    Conflict,
    InvalidInput,
    MaintenanceError,
    MaintenanceReport,
    MaintenanceService,
    NotFound,
    Programme,
    Unavailable,
    report_csv,
    report_html,
)
from control.maintenance.models import (
    Confirmation,
    ItemStatusPublic,
    ReadinessPublic,
    SiteMaintenance,
    WorkOrderPublic,
)
from control.maintenance.reports import build_report, readiness_public, status_public
from control.maintenance.service import SirenFacts, siren_facts
from control.sirens import SirenService
from shelterwatch.contract import SLUG_PATTERN

__all__ = ["ANSWERS", "http_error", "maintenance_service", "router"]

router = APIRouter(
    prefix="/api/v1/maintenance",
    tags=["maintenance"],
    dependencies=[StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)

Reader = Annotated[Principal, Allow(Permission.MAINTENANCE_READ)]
Maintainer = Annotated[Principal, Allow(Permission.MAINTENANCE_WRITE)]
SitePath = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=64)]


def _site(site: SitePath, scope: ScopeDep) -> str:
    if not scope.has_site(site):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site!r}")
    return site


# A site of the caller's area (404 otherwise, before anything is read or written).
Site = Annotated[str, Depends(_site)]
ItemKey = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=64)]
# Epoch ms between 1970 and 9999.
Ms = Annotated[int, Query(ge=0, le=253_402_300_799_999)]
_MAX_PERIOD_MS = 3 * 366 * 86_400_000

ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such item, work order or alert", "model": ErrorDetail},
    409: {"description": "The state does not allow it", "model": ErrorDetail},
    503: {"description": "The audit trail cannot take it now", "model": ErrorDetail},
}
REPORT_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "text/html": {"schema": {"type": "string"}},
        },
    },
}


def maintenance_service(request: Request) -> MaintenanceService:
    service: MaintenanceService = request.state.maintenance
    return service


def http_error(exc: MaintenanceError) -> Exception:
    if isinstance(exc, InvalidInput):
        loc = ("body", exc.field) if exc.field else ("body",)
        return RequestValidationError(
            [{"type": "value_error", "loc": loc, "msg": str(exc), "input": None}]
        )
    codes: list[tuple[type[MaintenanceError], int]] = [
        (NotFound, status.HTTP_404_NOT_FOUND),
        (Conflict, status.HTTP_409_CONFLICT),
        (Unavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    ]
    code = next((c for t, c in codes if isinstance(exc, t)), 500)
    return HTTPException(code, str(exc))


@router.get("/programme")
async def programme(_user: Reader, request: Request) -> Programme:
    """The programme in force: items per equipment type with their periods."""
    return maintenance_service(request).programme


@router.get("/sites/{site}", responses=ANSWERS)
async def site_items(site: Site, _user: Reader, request: Request) -> SiteMaintenance:
    """Every item at the site: done, scheduled, due or overdue, with its last completion
    (telemetry evidence or a person's note). Telemetry is searched for new evidence first."""
    service = maintenance_service(request)
    statuses = await service.status(site)
    counts: dict[str, int] = {}
    for st in statuses:
        counts[st.state] = counts.get(st.state, 0) + 1
    return SiteMaintenance(
        site=site,
        programme=service.programme.name,
        now_ms=time.time_ns() // 1_000_000,
        counts=counts,
        items=[status_public(s) for s in statuses],
    )


@router.post("/sites/{site}/items/{item}/confirm", responses={**BAD_JSON, **ANSWERS})
async def confirm_item(
    site: Site, item: ItemKey, body: Confirmation, user: Maintainer, request: Request
) -> ItemStatusPublic:
    """A person confirms the item done at the site, with a note (audited)."""
    try:
        found = await maintenance_service(request).confirm(
            site, item, note=body.note, actor=user.username, done_ms=body.done_ms
        )
    except MaintenanceError as exc:
        raise http_error(exc) from exc
    return status_public(found)


@router.get("/sites/{site}/readiness", responses=ANSWERS)
async def site_readiness(site: Site, _user: Reader, request: Request) -> ReadinessPublic:
    """The site's readiness state and score out of 100; each cause says the points it cost."""
    sirens: SirenService = request.state.sirens
    facts = (await siren_facts(sirens)).get(site, SirenFacts())
    found = await maintenance_service(request).readiness(
        site, flagged_sirens=facts.flagged, sirens=facts.sirens, district=facts.district
    )
    return readiness_public(found)


def _period(since_ms: int | None, until_ms: int | None) -> tuple[int, int]:
    """The report's period: until now and 30 days back by default. A start after the end is
    the end (an empty period); a period longer than three years is cut to its last three."""
    until = until_ms if until_ms is not None else time.time_ns() // 1_000_000
    since = since_ms if since_ms is not None else until - 30 * 86_400_000
    return max(min(since, until), until - _MAX_PERIOD_MS, 0), until


def _answer(report: MaintenanceReport, format: str, request: Request, name: str) -> Any:
    zone = request.state.settings.sirens.timezone
    if format == "csv":
        return Response(
            report_csv(report, zone),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="maintenance-{name}.csv"'},
        )
    if format == "html":
        return Response(report_html(report, zone), media_type="text/html; charset=utf-8")
    return report


@router.get("/sites/{site}/report", responses={**REPORT_CONTENT, **ANSWERS})
async def site_report(
    site: Site,
    _user: Reader,
    request: Request,
    since_ms: Ms | None = None,
    until_ms: Ms | None = None,
    format: Annotated[str, Query(pattern="^(json|csv|html)$")] = "json",
) -> MaintenanceReport:
    """The inspection report of a site for a period (default: the last 30 days): items due,
    done and overdue at its end with their evidence, open work orders, readiness."""
    since, until = _period(since_ms, until_ms)
    service = maintenance_service(request)
    report = await build_report(
        service, [site], scope="site", name=site, since_ms=since, until_ms=until
    )
    return _answer(report, format, request, site)  # type: ignore[no-any-return]


@router.get("/districts/{district}/report", responses={**REPORT_CONTENT, **ANSWERS})
async def district_report(
    district: Annotated[str, Path(min_length=1, max_length=64)],
    _user: Reader,
    request: Request,
    scope: ScopeDep,
    since_ms: Ms | None = None,
    until_ms: Ms | None = None,
    format: Annotated[str, Query(pattern="^(json|csv|html)$")] = "json",
) -> MaintenanceReport:
    """The same report for every site of a district (the districts of the siren posts) in
    the caller's area."""
    since, until = _period(since_ms, until_ms)
    service = maintenance_service(request)
    sites = [site for site in await service.district_sites(district) if scope.has_site(site)]
    if not sites:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site in district {district!r}")
    report = await build_report(
        service, sites, scope="district", name=district, since_ms=since, until_ms=until
    )
    return _answer(report, format, request, "district")  # type: ignore[no-any-return]


@router.get("/areas/{code}/report", responses={**REPORT_CONTENT, **ANSWERS})
async def area_report(
    code: Annotated[str, Path(pattern=CODE_PATTERN, max_length=64)],
    _user: Reader,
    request: Request,
    scope: ScopeDep,
    since_ms: Ms | None = None,
    until_ms: Ms | None = None,
    format: Annotated[str, Query(pattern="^(json|csv|html)$")] = "json",
) -> MaintenanceReport:
    """The same report for every site of a command area (a county, a city, the province):
    what an inspector of that level reads."""
    if code not in scope.tree.areas or not scope.has_area(code):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no area {code!r}")
    sites = sorted(scope.tree.sites_under(code))
    if not sites:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site in area {code!r}")
    since, until = _period(since_ms, until_ms)
    report = await build_report(
        maintenance_service(request),
        sites,
        scope="area",
        name=code,
        since_ms=since,
        until_ms=until,
    )
    return _answer(report, format, request, code)  # type: ignore[no-any-return]


def _everywhere(scope: Scope) -> None:
    if not scope.unlimited:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "the sweep covers every area; it runs on its own every "
            "maintenance.sweep_interval_s, or an admin who acts everywhere runs it",
        )


@router.post("/sweep", responses=ANSWERS)
async def sweep(user: Maintainer, request: Request, scope: ScopeDep) -> list[WorkOrderPublic]:
    """The sweep the service also runs every ``maintenance.sweep_interval_s``: the work
    orders still missing (one per open degradation (trend) alert and one per programme item
    due or overdue at a site), telemetry evidence, and every site's readiness recorded in the
    time-series store. Returns the new work orders; run again, it makes none. Under
    /maintenance rather than /work-orders, where a GET of the same path would be read as a
    work order's id."""
    _everywhere(scope)
    try:
        result = await maintenance_service(request).sweep(
            actor=user.username, sirens=request.state.sirens
        )
    except MaintenanceError as exc:
        raise http_error(exc) from exc
    return result.orders
