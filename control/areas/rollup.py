"""What a parent area sees of its children: each child's open alerts, activations and
conversions under way, counted over the child's sites.

A commander of a city reads one line per county instead of every siren and alert; a county
reading its own summary sees its sites, never a sibling's, because the summary starts at an
area the caller's scope covers and goes down only.
"""

from __future__ import annotations

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

__all__ = ["AreaCounts", "area_counts"]

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


async def area_counts(db: Database, tree: AreaTree, codes: Iterable[str]) -> list[AreaCounts]:
    """One ``AreaCounts`` per area of ``codes``, each over every site under it."""
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
    return [out[a.code] for a in wanted]
