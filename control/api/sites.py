"""Sites and their latest readings, within the caller's area: the list leaves out sites
outside it, and such a site answers 404 like one with no readings at all."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel

from control.api.deps import FORBIDDEN, UNAUTHORIZED, Allow, ErrorDetail, ScopeDep, StoreDep
from control.auth import Permission
from shelterwatch.contract import SLUG_PATTERN
from shelterwatch.store import FieldValue

router = APIRouter(
    prefix="/api/v1/sites",
    tags=["sites"],
    dependencies=[Allow(Permission.SITES_READ)],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)


class PointReading(BaseModel):
    value: FieldValue
    unit: str
    ts: int


class DeviceReadings(BaseModel):
    kind: str
    points: dict[str, PointReading]


class SiteLatest(BaseModel):
    site: str
    devices: dict[str, DeviceReadings]


@router.get("")
async def list_sites(store: StoreDep, scope: ScopeDep) -> list[str]:
    # The store knows sites only by the readings it holds, not by area, and the list is
    # short and unpaged: filtering it here is exact.
    return [site for site in await store.sites() if scope.has_site(site)]


@router.get(
    "/{site}/latest",
    responses={404: {"description": "No readings for this site", "model": ErrorDetail}},
)
async def site_latest(
    store: StoreDep, scope: ScopeDep, site: str = Path(pattern=SLUG_PATTERN, max_length=64)
) -> SiteLatest:
    # Alert events live in the store too (measurement "alert"); they are not readings.
    # A site outside the caller's area is not even read, and answers as one without readings.
    rows = (
        [row for row in await store.latest(site) if row.kind != "alert"]
        if scope.has_site(site)
        else []
    )
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no readings for site {site!r}")
    devices: dict[str, DeviceReadings] = {}
    for row in rows:
        dev = devices.setdefault(row.device, DeviceReadings(kind=row.kind, points={}))
        dev.points[row.point] = PointReading(value=row.value, unit=row.unit, ts=row.ts_ms)
    return SiteLatest(site=site, devices=devices)
