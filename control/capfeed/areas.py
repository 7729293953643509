"""Where a CAP message applies, in siren posts: pure geometry and names, no IO.

Outbound, each target siren's coverage circle goes out, grouped by district (the district's
name is the ``areaDesc``). Inbound, a siren post is a target when its coverage circle meets a
CAP circle or polygon, or its district is named by an ``areaDesc``. "Meets" rather than "lies
inside": a siren whose sound reaches into the warned area is the only warning some of its
people get, so a post on the area's edge sounds too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, Protocol

from control.cap import Area, Circle, Polygon

__all__ = ["Match", "Post", "areas_of", "match_posts", "slug_of"]

# The mean Earth radius (IUGG), in km: enough for siren ranges of a few kilometres.
_EARTH_KM = 6371.0088
_NOT_SLUG = re.compile(r"[^a-z0-9_-]+")


class Post(Protocol):
    """What a siren post tells CAP (control.db.SirenPost has these)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def district(self) -> str: ...
    @property
    def lat(self) -> float: ...
    @property
    def lon(self) -> float: ...
    @property
    def radius_m(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Match:
    siren: str
    district: str
    area: str  # the areaDesc of the CAP area that matched
    by: Literal["circle", "polygon", "district"]


def slug_of(text: str) -> str:
    """``"North District"`` → ``north-district``: how an areaDesc is compared to a district."""
    return _NOT_SLUG.sub("-", text.strip().casefold()).strip("-")


def areas_of(posts: Iterable[Post]) -> tuple[Area, ...]:
    """One CAP area per district (named by it) with its sirens' circles; a siren without a
    district is an area of its own, named after the post."""
    by_district: dict[str, list[Post]] = {}
    alone: list[Post] = []
    for post in posts:
        (by_district.setdefault(post.district, []) if post.district else alone).append(post)
    areas = [
        Area(district, circles=tuple(_circle(p) for p in members))
        for district, members in sorted(by_district.items())
    ]
    areas += [Area(p.name, circles=(_circle(p),)) for p in sorted(alone, key=lambda p: p.id)]
    return tuple(areas)


def _circle(post: Post) -> Circle:
    return Circle(post.lat, post.lon, post.radius_m / 1000)


def match_posts(posts: Sequence[Post], areas: Sequence[Area]) -> list[Match]:
    """Each post that an area reaches, once, with the first reason found (sorted by id)."""
    matches: dict[str, Match] = {}
    for post in sorted(posts, key=lambda p: p.id):
        for area in areas:
            by = _reach(post, area)
            if by is not None:
                matches[post.id] = Match(post.id, post.district, area.description, by)
                break
    return list(matches.values())


def _reach(post: Post, area: Area) -> Literal["circle", "polygon", "district"] | None:
    radius_km = post.radius_m / 1000
    for circle in area.circles:
        apart = _distance_km(post.lat, post.lon, circle.lat, circle.lon)
        if apart <= radius_km + circle.radius_km:
            return "circle"
    for polygon in area.polygons:
        if _meets_polygon(post.lat, post.lon, radius_km, polygon):
            return "polygon"
    if post.district and slug_of(area.description) == post.district.casefold():
        return "district"
    return None


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


def _meets_polygon(lat: float, lon: float, radius_km: float, polygon: Polygon) -> bool:
    # Flattened around the siren (equirectangular): over a city's extent the error is far
    # below a siren's range. Polygons across the antimeridian are not handled.
    scale = math.cos(math.radians(lat))
    points = [
        (math.radians(plon - lon) * scale * _EARTH_KM, math.radians(plat - lat) * _EARTH_KM)
        for plat, plon in polygon.points
    ]
    inside = False
    for (x1, y1), (x2, y2) in pairwise(points):
        # Ray casting from the centre (the origin) along +x.
        if (y1 > 0) != (y2 > 0) and x1 - y1 * (x2 - x1) / (y2 - y1) > 0:
            inside = not inside
        if _segment_distance(x1, y1, x2, y2) <= radius_km:
            return True
    return inside


def _segment_distance(x1: float, y1: float, x2: float, y2: float) -> float:
    """Distance from the origin to the segment (x1, y1)-(x2, y2)."""
    dx, dy = x2 - x1, y2 - y1
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, -(x1 * dx + y1 * dy) / length2))
    return math.hypot(x1 + t * dx, y1 + t * dy)
