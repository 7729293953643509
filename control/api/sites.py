"""Sites and their latest readings."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel

from control.api.deps import FORBIDDEN, UNAUTHORIZED, Allow, ErrorDetail, StoreDep
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
async def list_sites(store: StoreDep) -> list[str]:
    return await store.sites()


@router.get(
    "/{site}/latest",
    responses={404: {"description": "No readings for this site", "model": ErrorDetail}},
)
async def site_latest(
    store: StoreDep, site: str = Path(pattern=SLUG_PATTERN, max_length=64)
) -> SiteLatest:
    # Alert events live in the store too (measurement "alert"); they are not readings.
    rows = [row for row in await store.latest(site) if row.kind != "alert"]
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no readings for site {site!r}")
    devices: dict[str, DeviceReadings] = {}
    for row in rows:
        dev = devices.setdefault(row.device, DeviceReadings(kind=row.kind, points={}))
        dev.points[row.point] = PointReading(value=row.value, unit=row.unit, ts=row.ts_ms)
    return SiteLatest(site=site, devices=devices)
