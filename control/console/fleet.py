"""The fleet view and the site view: the readiness of every site in the caller's area, a
site's readings and charts. A site outside the caller's area is left out of the fleet and
answers 404 on its own page, as a site without readings does."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

from control.alerts import AlertService
from control.api.deps import Allow, StoreDep
from control.areas import Level, Scope
from control.areas.rollup import area_counts
from control.auth import Permission, Principal
from control.console.readiness import AlertFact, SiteFacts, SiteReadiness, assess
from control.console.render import render
from control.console.scope import CallerScope, area_choices, top_of, trail
from control.console.thresholds import thresholds_for
from control.conversions import ConversionService
from control.maintenance.readiness import NOT_READINGS
from control.sirens import SirenService
from control.sirens import inventory as inv
from shelterwatch.contract import SLUG_PATTERN
from shelterwatch.errors import ShelterwatchError
from shelterwatch.store import LatestValue, TimeSeriesStore

if TYPE_CHECKING:  # the maintenance service imports readiness, which the console shares
    from control.maintenance import MaintenanceService

__all__ = ["RANGES", "FleetRow", "posture_of", "postures_of", "router"]

log = logging.getLogger(__name__)

router = APIRouter()

Reader = Annotated[Principal, Allow(Permission.SITES_READ)]
# The site view's time ranges: name → ms.
RANGES: dict[str, int] = {
    "1h": 3_600_000,
    "6h": 6 * 3_600_000,
    "24h": 86_400_000,
    "7d": 7 * 86_400_000,
}
# Charted first when the user has not picked a point: the readings a duty officer checks.
_PREFERRED = ("overpressure", "co2", "tank_level", "battery_voltage", "seal_pressure")
# A device whose newest reading is older than this is shown as stale on the site view: three
# of the gateway's full snapshots (60 s by default), as the alert engine's device_silent rule.
STALE_MS = 180_000


async def posture_of(request: Request, site: str) -> str:
    """The site's declared posture (peacetime, converting, wartime) as conversion orders set
    it (control/conversions; the same value the alert engine reads from the broker). A site no
    order has moved is in peacetime."""
    return (await postures_of(request)).get(site, "peacetime")


async def postures_of(request: Request) -> dict[str, str]:
    conversions: ConversionService = request.state.conversions
    return await conversions.postures()


async def _latest(store: TimeSeriesStore, site: str) -> list[LatestValue]:
    try:
        return [row for row in await store.latest(site) if row.kind not in NOT_READINGS]
    except (ShelterwatchError, OSError) as exc:
        log.warning("console: no readings of site %s: %s", site, exc)
        return []


class FleetRow(NamedTuple):
    readiness: SiteReadiness
    posture: str
    # The site's name in the area tree ("" for a site the tree does not place).
    name: str


async def fleet_rows(
    request: Request, store: TimeSeriesStore, scope: Scope, within: frozenset[str] | None = None
) -> tuple[list[FleetRow], list[str]]:
    """The readiness of every site ``scope`` sees (and, with ``within``, only of those
    sites), and the districts of their siren posts."""

    def shown(site: str) -> bool:
        return scope.has_site(site) and (within is None or site in within)

    sirens: SirenService = request.state.sirens
    alerts: AlertService = request.state.alerts
    posts = [p for p in await inv.list_sirens(sirens.db) if shown(p.site)]
    health = await sirens.with_health(posts)
    sites = sorted(s for s in set(await store.sites()) | {p.site for p in posts} if shown(s))
    open_alerts = [
        a
        for a in await alerts.recent(active_only=True, limit=1000, scope=scope)
        if within is None or a.site in within
    ]
    # Sites are read one after the other: the SQLite store serialises reads anyway, and an
    # InfluxDB answers a few queries per site. Past a few hundred sites, Grafana's fleet
    # dashboard is the better tool (docs/dashboards.md).
    latest = await asyncio.gather(*(_latest(store, site) for site in sites))
    postures = await postures_of(request)
    rows = []
    for site, readings in zip(sites, latest, strict=True):
        at_site = [h for h in health if h.site == site]
        districts = sorted({h.district for h in at_site if h.district})
        readiness = await _readiness(
            request,
            SiteFacts(
                site=site,
                latest=readings,
                alerts=[
                    AlertFact(a.severity, a.kind, a.device) for a in open_alerts if a.site == site
                ],
                flagged_sirens=sum(1 for h in at_site if h.flagged),
                sirens=len(at_site),
                district=districts[0] if districts else "",
            ),
            [a for a in open_alerts if a.site == site],
        )
        place = scope.tree.get(site)
        rows.append(
            FleetRow(readiness, postures.get(site, "peacetime"), place.name if place else "")
        )
    districts = sorted({r.readiness.district for r in rows if r.readiness.district})
    return rows, districts


async def _readiness(request: Request, facts: SiteFacts, alerts: list[Any]) -> SiteReadiness:
    """With maintenance (overdue items, the last drill) and its score; without, if the
    maintenance records cannot be read, rather than no fleet view at all."""
    maintenance: MaintenanceService | None = getattr(request.state, "maintenance", None)
    if maintenance is None:
        return assess(facts)
    try:
        return await maintenance.readiness(
            facts.site,
            flagged_sirens=facts.flagged_sirens,
            sirens=facts.sirens,
            district=facts.district,
            latest=facts.latest,
            alerts=alerts,
        )
    except (ShelterwatchError, OSError, SQLAlchemyError) as exc:
        log.warning("console: no maintenance readiness of site %s: %s", facts.site, exc)
        return assess(facts)


def _unknown_area(area: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no area {area!r}")


@router.get("/fleet")
async def fleet(
    request: Request,
    user: Reader,
    store: StoreDep,
    scope: CallerScope,
    district: Annotated[str | None, Query(max_length=64)] = None,
    area: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)] = None,
) -> Response:
    """With ``area``, the sites under that area (one of the caller's) and a line per child
    area with its counts rolled up; an area outside the caller's answers 404 like one that
    does not exist."""
    tree = scope.tree
    top = top_of(scope)
    place = tree.get(area) if area else None
    if area and (place is None or place.level is Level.SITE or not scope.has_area(area)):
        raise _unknown_area(area)
    focus = area or top
    # The root holds the sites no area places too: picking it filters nothing.
    within = tree.sites_under(area) if area and area != tree.root_code() else None
    rows, districts = await fleet_rows(request, store, scope, within)
    if district:
        rows = [r for r in rows if r.readiness.district == district]
    totals: dict[str, int] = {}
    for row in rows:
        totals[row.readiness.state.key] = totals.get(row.readiness.state.key, 0) + 1
    children = [
        c for c in (tree.children(focus) if focus else ()) if tree.areas[c].level is not Level.SITE
    ]
    return render(
        request,
        "fleet",
        {
            "rows": rows,
            "districts": districts,
            "district": district or "",
            "totals": totals,
            "area": area or "",
            "areas": area_choices(scope),
            "trail": trail(scope, focus) if focus else [],
            "rollup": (
                await area_counts(request.state.db, tree, children, store) if children else []
            ),
        },
        user=user,
    )


def _chart_choice(
    readings: list[LatestValue], device: str | None, point: str | None
) -> LatestValue | None:
    numeric = [
        r for r in readings if isinstance(r.value, int | float) and not isinstance(r.value, bool)
    ]
    if device and point:
        return next((r for r in numeric if r.device == device and r.point == point), None)
    for name in _PREFERRED:
        found = next((r for r in numeric if r.point == name), None)
        if found is not None:
            return found
    return numeric[0] if numeric else None


@router.get("/sites/{site}")
async def site_view(
    request: Request,
    user: Reader,
    store: StoreDep,
    scope: CallerScope,
    site: Annotated[str, Path(pattern=SLUG_PATTERN, max_length=64)],
    device: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)] = None,
    point: Annotated[str | None, Query(max_length=64)] = None,
    range: Annotated[str, Query(pattern="^(1h|6h|24h|7d)$")] = "1h",
) -> Response:
    unknown = HTTPException(status.HTTP_404_NOT_FOUND, f"no readings for site {site!r}")
    # A site outside the caller's area is not read at all, and answers in the very words of
    # a site without readings.
    if not scope.has_site(site):
        raise unknown
    readings = await _latest(store, site)
    alerts: AlertService = request.state.alerts
    open_alerts = await alerts.recent(active_only=True, site=site, limit=200, scope=scope)
    if not readings and not open_alerts:
        raise unknown
    devices: dict[str, list[LatestValue]] = {}
    for row in readings:
        devices.setdefault(row.device, []).append(row)
    chosen = _chart_choice(readings, device, point)
    chart: dict[str, Any] | None = None
    if chosen is not None:
        chart = {
            "device": chosen.device,
            "point": chosen.point,
            "kind": chosen.kind,
            "unit": chosen.unit,
            "range_ms": RANGES[range],
            "limits": thresholds_for(chosen.kind, chosen.point),
        }
    now = time.time_ns() // 1_000_000
    return render(
        request,
        "site",
        {
            "site": site,
            "site_name": place.name if (place := scope.tree.get(site)) else "",
            "trail": trail(scope, site),
            "devices": devices,
            "alerts": open_alerts,
            "chart": chart,
            "range": range,
            "ranges": list(RANGES),
            "posture": await posture_of(request, site),
            "stale_before": now - STALE_MS,
            # The chart's axis in the same time zone as every time on the page.
            "tz": request.state.settings.sirens.timezone,
        },
        user=user,
    )
