"""A point's history from the time-series store, for charts: ``/api/v1/sites/{site}/history``.

The answer is bucketed to at most ``max_points`` points (the mean of a numeric point per
bucket, the last value of any other), so a chart of a week costs the same as one of an hour.
A site outside the caller's area answers 404 exactly like a point without readings.
"""

from __future__ import annotations

import math
import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel

from control.api.deps import (
    FORBIDDEN,
    UNAUTHORIZED,
    Allow,
    ErrorDetail,
    ScopeDep,
    StoreDep,
    StrictQuery,
)
from control.auth import Permission
from shelterwatch.contract import SLUG_PATTERN
from shelterwatch.store import FieldValue

__all__ = ["History", "router"]

router = APIRouter(
    prefix="/api/v1/sites",
    tags=["sites"],
    dependencies=[Allow(Permission.SITES_READ), StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)

# A year: longer ranges are a report, not a chart; they are cut to their last year.
MAX_RANGE_MS = 366 * 86_400_000
DEFAULT_RANGE_MS = 3_600_000
# Epoch ms the store can hold (int64), and a bound the browser's Date accepts.
_MAX_TS = 8_640_000_000_000_000
# Point names are profile names; a looser pattern than a slug (profiles use underscores).
_POINT_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"


class History(BaseModel):
    site: str
    device: str
    # The device's kind (the store's measurement) and the point's unit, as latest shows them.
    kind: str
    point: str
    unit: str
    since: int
    until: int
    # The width of each bucket in ms; each point is a bucket's start.
    bucket_ms: int
    # [ts_ms, value] pairs, oldest first: the mean of a numeric point, else the last value.
    points: list[tuple[int, FieldValue]]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@router.get(
    "/{site}/history",
    responses={
        404: {"description": "No readings of this device and point", "model": ErrorDetail},
    },
)
async def point_history(
    store: StoreDep,
    scope: ScopeDep,
    site: Annotated[str, Path(pattern=SLUG_PATTERN, max_length=64)],
    device: Annotated[str, Query(pattern=SLUG_PATTERN, max_length=64)],
    point: Annotated[str, Query(pattern=_POINT_PATTERN, max_length=64)],
    since: Annotated[
        int | None, Query(ge=0, le=_MAX_TS, description="epoch ms; default an hour before until")
    ] = None,
    until: Annotated[
        int | None, Query(ge=0, le=_MAX_TS, description="epoch ms; default now")
    ] = None,
    max_points: Annotated[int, Query(ge=10, le=5000)] = 500,
) -> History:
    """The values of one point of one device over a time range, at most ``max_points``
    (bucketed). A range longer than 366 days is cut to its last 366 days."""
    end = until if until is not None else _now_ms()
    # A range longer than a year is cut to its last year (a chart, not a report); an empty
    # or inverted range has no points. Both answer 200, so a client's query never fails on
    # its arithmetic.
    start = since if since is not None else end - DEFAULT_RANGE_MS
    start = max(0, start, end - MAX_RANGE_MS)
    # The device's kind names the store's measurement; the latest readings say which it is.
    latest = await store.latest(site) if scope.has_site(site) else []
    found = next(
        (
            row
            for row in latest
            if row.device == device and row.point == point and row.kind != "alert"
        ),
        None,
    )
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no readings of point {point!r} of device {device!r} at site {site!r}; "
            f"GET /api/v1/sites/{site}/latest lists what there is",
        )
    bucket = max(1, math.ceil((end - start) / max_points))
    rows = (
        await store.history(found.kind, site, device, point, start, end, bucket_ms=bucket)
        if start < end
        else []
    )
    return History(
        site=site,
        device=device,
        kind=found.kind,
        point=point,
        unit=found.unit,
        since=start,
        until=end,
        bucket_ms=bucket,
        points=[(p.ts_ms, p.value) for p in rows],
    )
