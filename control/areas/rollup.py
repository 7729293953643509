"""What a parent area sees of its children: each child's readiness, open alerts, activations
and conversions under way, counted over the child's sites.

A commander of a city reads one line per county instead of every siren and alert; a county
reading its own summary sees its sites, never a sibling's, because the summary starts at an
area the caller's scope covers and goes down only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select

from control.areas.tree import AreaTree, Level
from control.db import (
    ConversionOrder,
    ConversionTarget,
    Database,
    SirenActivation,
    SirenTarget,
)
from control.db.models import AlertRecord
from shelterwatch.errors import ShelterwatchError
from shelterwatch.store import TimeSeriesStore

__all__ = ["AreaCounts", "area_counts"]

log = logging.getLogger(__name__)

# The maintenance sweep records each site's readiness in the store under this measurement
# (control/maintenance/service.py); reading it here keeps the roll-up one store read per site.
_READINESS = "readiness"
# Store reads at once: a province's summary reads thousands of sites, not all in one burst.
_READ_AT_ONCE = 16

# The activation and order states in which something is still happening or waiting.
_ACTIVATIONS_UNDER_WAY = ("active", "cancelling")
_ACTIVATIONS_WAITING = ("pending_approval",)
_CONVERSIONS_UNDER_WAY = ("running",)
_CONVERSIONS_WAITING = ("pending_approval",)


@dataclass
class AreaCounts:
    code: str
    name: str
    level: Level
    sites: int = 0
    # Open (raised or acknowledged, not cleared) alerts by severity.
    alerts_open: dict[str, int] = field(default_factory=dict)
    activations_under_way: int = 0
    activations_waiting_approval: int = 0
    conversions_under_way: int = 0
    conversions_waiting_approval: int = 0
    # The mean of the sites' last recorded readiness scores; None when none is recorded.
    readiness_mean: float | None = None
    # Sites by their last recorded readiness state (ready, attention, degraded, not_ready);
    # sites without a record yet are counted under "unknown".
    readiness: dict[str, int] = field(default_factory=dict)


async def area_counts(
    db: Database,
    tree: AreaTree,
    codes: Iterable[str],
    store: TimeSeriesStore | None = None,
) -> list[AreaCounts]:
    """One ``AreaCounts`` per area of ``codes``, each over every site under it; with a
    ``store``, each area's readiness from the sites' last recorded scores too."""
    wanted = [tree.areas[c] for c in codes if c in tree.areas]
    home: dict[str, list[str]] = defaultdict(list)
    out: dict[str, AreaCounts] = {}
    for area in wanted:
        out[area.code] = AreaCounts(area.code, area.name, area.level)
        for site in tree.sites_under(area.code):
            home[site].append(area.code)
            out[area.code].sites += 1
    if not home:
        return list(out.values())
    sites = list(home)
    async with db.session() as s:
        alerts = (
            await s.execute(
                select(AlertRecord.site, AlertRecord.severity, func.count())
                .where(AlertRecord.state != "cleared", AlertRecord.site.in_(sites))
                .group_by(AlertRecord.site, AlertRecord.severity)
            )
        ).all()
        activations = (
            await s.execute(
                select(SirenTarget.site, SirenActivation.id, SirenActivation.state)
                .join(SirenActivation, SirenTarget.activation_id == SirenActivation.id)
                .where(
                    SirenActivation.state.in_(_ACTIVATIONS_UNDER_WAY + _ACTIVATIONS_WAITING),
                    SirenTarget.site.in_(sites),
                )
            )
        ).all()
        conversions = (
            await s.execute(
                select(ConversionTarget.site, ConversionOrder.id, ConversionOrder.state)
                .join(ConversionOrder, ConversionTarget.order_id == ConversionOrder.id)
                .where(
                    ConversionOrder.state.in_(_CONVERSIONS_UNDER_WAY + _CONVERSIONS_WAITING),
                    ConversionTarget.site.in_(sites),
                )
            )
        ).all()
    for site, severity, count in alerts:
        for code in home[site]:
            counts = out[code].alerts_open
            counts[severity] = counts.get(severity, 0) + int(count)
    # An activation or order over several sites of one area counts once for that area.
    seen: set[tuple[str, str, str]] = set()
    for site, activation, state in activations:
        for code in home[site]:
            if ("act", code, activation) in seen:
                continue
            seen.add(("act", code, activation))
            if state in _ACTIVATIONS_WAITING:
                out[code].activations_waiting_approval += 1
            else:
                out[code].activations_under_way += 1
    for site, order, state in conversions:
        for code in home[site]:
            if ("conv", code, order) in seen:
                continue
            seen.add(("conv", code, order))
            if state in _CONVERSIONS_WAITING:
                out[code].conversions_waiting_approval += 1
            else:
                out[code].conversions_under_way += 1
    if store is not None:
        scores = await _readiness(store, sites)
        totals: dict[str, list[int]] = defaultdict(list)
        for site in sites:
            score, state = scores.get(site, (None, "unknown"))
            for code in home[site]:
                counts = out[code].readiness
                counts[state] = counts.get(state, 0) + 1
                if score is not None:
                    totals[code].append(score)
        for code, values in totals.items():
            out[code].readiness_mean = round(sum(values) / len(values), 1)
    return [out[a.code] for a in wanted]


async def _readiness(store: TimeSeriesStore, sites: list[str]) -> dict[str, tuple[int, str]]:
    gate = asyncio.Semaphore(_READ_AT_ONCE)
    found: dict[str, tuple[int, str]] = {}

    async def one(site: str) -> None:
        async with gate:
            try:
                rows = await store.latest(site)
            except (ShelterwatchError, OSError) as exc:
                # A summary without readiness beats no summary: the counts still hold.
                log.warning("area summary: no readiness of %s: %s", site, exc)
                return
        values = {r.point: r.value for r in rows if r.kind == _READINESS}
        score, state = values.get("score"), values.get("state")
        if isinstance(score, int | float) and not isinstance(score, bool):
            found[site] = (round(score), str(state or "unknown"))

    await asyncio.gather(*(one(site) for site in sites))
    return found
