"""Live updates for open console pages: Server-Sent Events fed by polling the database.

Why polling, not hooks: the control service may run as several replicas over one
PostgreSQL. An alert recorded or a siren answer taken by replica A must reach a browser
connected to replica B; an in-process hook on A would never tell B. Every replica reads the
same tables, so a poll sees every change whoever made it. The cost is bounded: one small
query pair per second per replica (the snapshot is shared by all streams of the process,
however many tabs are open), and an update shows up to a second late.

Events (``event:`` name, JSON ``data:``):

- ``alerts``: an alert was raised, updated, acknowledged or cleared;
- ``activation`` ``{"id": ...}``: an activation or one of its sirens changed;
- ``conversion`` ``{"id": ...}``: a conversion order, one of its steps, or a posture changed;
- ``signed_out``: the session ended (logged out, expired, account disabled): stop.

Each stream hears only of what lies in its user's area (control/areas/scope.py): an alert at
one of its sites, an activation with a siren at one of them, an order with a shelter at one
of them, a posture of one of them; nothing, not even an id, of a neighbour's. The area is
read again with the session (every ``RECHECK_S``), so a user moved to another area hears of
the new one from then on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from control.api.deps import Allow, SessionsDep
from control.areas import AreaStore, Scope
from control.auth import Permission, Principal, Sessions
from control.console.scope import CallerScope, area_store
from control.db import (
    ConversionEvent,
    ConversionOrder,
    ConversionStep,
    ConversionTarget,
    Database,
    SirenActivation,
    SirenTarget,
    SitePostureRecord,
)
from control.db.models import AlertRecord
from control.sirens.activations import FINAL_STATES

__all__ = ["ChangeFeed", "Snapshot", "router"]

log = logging.getLogger(__name__)

router = APIRouter()

POLL_S = 1.0
# A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_S = 15.0
# The session is checked again this often: a logout elsewhere ends the stream.
RECHECK_S = 30.0
# Activations watched: every unfinished one, and finished ones changed this recently (late
# answers can still correct a finished report).
_RECENT_MS = 3_600_000
_WATCHED = 200

_V = TypeVar("_V")


@dataclass(frozen=True)
class Snapshot:
    alerts: tuple[int, int | None] = (0, None)
    # site → the count and newest change of its alerts: which sites an alert change is about
    alert_sites: Mapping[str, tuple[int, int | None]] = field(default_factory=dict)
    # activation id → what changes when it or one of its sirens changes
    activations: dict[str, tuple[object, ...]] = field(default_factory=dict)
    # activation id → the sites of its sirens
    activation_sites: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # conversion order id → its state and newest change (steps included)
    conversions: dict[str, tuple[object, ...]] = field(default_factory=dict)
    # conversion order id → the sites of its shelters
    conversion_sites: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # the count and newest change of the sites' postures, and each site's change
    postures: tuple[int, int | None] = (0, None)
    posture_sites: Mapping[str, int] = field(default_factory=dict)

    def changes(
        self, newer: Snapshot, scope: Scope | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        """The events between this snapshot and ``newer`` that ``scope`` may hear of (None:
        every event)."""
        whole = scope is None or scope.unlimited

        def seen(sites: Iterable[str]) -> bool:
            return whole or (scope is not None and any(scope.has_site(s) for s in sites))

        out: list[tuple[str, dict[str, str]]] = []
        if newer.alerts != self.alerts and (
            whole or seen(_moved(self.alert_sites, newer.alert_sites))
        ):
            out.append(("alerts", {}))
        for activation_id, sig in sorted(newer.activations.items()):
            if self.activations.get(activation_id) != sig and seen(
                newer.activation_sites.get(activation_id, ())
            ):
                out.append(("activation", {"id": activation_id}))
        # "" stands for the postures: the board shows them, so a change refreshes it.
        if newer.postures != self.postures and (
            whole or seen(_moved(self.posture_sites, newer.posture_sites))
        ):
            out.append(("conversion", {"id": ""}))
        for order_id, sig in sorted(newer.conversions.items()):
            if self.conversions.get(order_id) != sig and seen(
                newer.conversion_sites.get(order_id, ())
            ):
                out.append(("conversion", {"id": order_id}))
        return out


def _moved(older: Mapping[str, _V], newer: Mapping[str, _V]) -> set[str]:
    return {k for k in older.keys() | newer.keys() if older.get(k) != newer.get(k)}


class ChangeFeed:
    """The latest snapshot, taken at most once per ``poll_s`` for all streams.

    What each change is about (the sites of an alert, an activation, an order or a posture)
    is read only when something moved, and the sites of an activation or order only once:
    its targets are fixed when it is recorded. So a quiet second costs what it did before
    areas, whatever the number of sites."""

    def __init__(self, db: Database, poll_s: float = POLL_S) -> None:
        self.db = db
        self.poll_s = poll_s
        self._lock = asyncio.Lock()
        self._snapshot: Snapshot | None = None
        self._taken = 0.0
        self._activation_sites: dict[str, frozenset[str]] = {}
        self._conversion_sites: dict[str, frozenset[str]] = {}

    async def snapshot(self) -> Snapshot:
        async with self._lock:
            now = time.monotonic()
            if self._snapshot is None or now - self._taken >= self.poll_s * 0.9:
                self._snapshot = await self._take(self._snapshot)
                self._taken = now
            return self._snapshot

    async def _take(self, before: Snapshot | None) -> Snapshot:
        since = time.time_ns() // 1_000_000 - _RECENT_MS
        finals = [s.value for s in FINAL_STATES]
        async with self.db.session() as s:
            count, newest = (
                await s.execute(
                    select(func.count(AlertRecord.id), func.max(AlertRecord.updated_ts))
                )
            ).one()
            alerts = (int(count), newest)
            if before is not None and before.alerts == alerts:
                alert_sites = before.alert_sites
            else:
                alert_sites = await _alert_sites(s)
            rows = (
                await s.execute(
                    select(SirenActivation.id, SirenActivation.state, SirenActivation.updated_ms)
                    .where(
                        or_(
                            SirenActivation.state.not_in(finals),
                            SirenActivation.updated_ms >= since,
                        )
                    )
                    .order_by(SirenActivation.updated_ms.desc())
                    .limit(_WATCHED)
                )
            ).all()
            sigs: dict[str, list[object]] = {r[0]: [r[1], r[2]] for r in rows}
            if sigs:
                targets = (
                    await s.execute(
                        select(
                            SirenTarget.activation_id,
                            SirenTarget.state,
                            func.count(SirenTarget.id),
                            func.max(SirenTarget.updated_ms),
                        )
                        .where(SirenTarget.activation_id.in_(list(sigs)))
                        .group_by(SirenTarget.activation_id, SirenTarget.state)
                        .order_by(SirenTarget.activation_id, SirenTarget.state)
                    )
                ).all()
                for activation_id, state, n, newest_target in targets:
                    sigs[activation_id].append((state, n, newest_target))
            self._activation_sites = await _sites_of(
                s, SirenTarget.activation_id, SirenTarget.site, sigs, self._activation_sites
            )
            conversions = await _conversions(s, since)
            self._conversion_sites = await _sites_of(
                s,
                ConversionTarget.order_id,
                ConversionTarget.site,
                conversions,
                self._conversion_sites,
            )
            posture_count, posture_newest = (
                await s.execute(
                    select(
                        func.count(SitePostureRecord.site), func.max(SitePostureRecord.updated_ms)
                    )
                )
            ).one()
            postures = (int(posture_count), posture_newest)
            if before is not None and before.postures == postures:
                posture_sites = before.posture_sites
            else:
                rows_of_postures = await s.execute(
                    select(SitePostureRecord.site, SitePostureRecord.updated_ms)
                )
                posture_sites = {site: updated for site, updated in rows_of_postures.all()}
        return Snapshot(
            alerts=alerts,
            alert_sites=alert_sites,
            activations={k: tuple(v) for k, v in sigs.items()},
            activation_sites=self._activation_sites,
            conversions=conversions,
            conversion_sites=self._conversion_sites,
            postures=postures,
            posture_sites=posture_sites,
        )


async def _alert_sites(s: AsyncSession) -> dict[str, tuple[int, int | None]]:
    rows = await s.execute(
        select(
            AlertRecord.site, func.count(AlertRecord.id), func.max(AlertRecord.updated_ts)
        ).group_by(AlertRecord.site)
    )
    return {site: (int(n), newest) for site, n, newest in rows.all()}


async def _sites_of(
    s: AsyncSession,
    key: InstrumentedAttribute[str],
    site: InstrumentedAttribute[str],
    watched: Mapping[str, object],
    known: Mapping[str, frozenset[str]],
) -> dict[str, frozenset[str]]:
    """The sites of each watched activation or order: those already known, and the rest
    read now. Only the watched ones are kept, so the map stays as small as the watch."""
    out = {k: known[k] for k in watched if k in known}
    missing = [k for k in watched if k not in known]
    if missing:
        found: dict[str, set[str]] = {k: set() for k in missing}
        rows = await s.execute(select(key, site).where(key.in_(missing)).distinct())
        for owner, where in rows.all():
            found[owner].add(where)
        # An activation or order seen before its targets were (another transaction) is
        # read again next time rather than remembered as placed nowhere.
        out.update({k: frozenset(v) for k, v in found.items() if v})
    return out


async def _conversions(s: AsyncSession, since: int) -> dict[str, tuple[object, ...]]:
    """Open orders and recently changed ones; a step's change moves its order's signature
    (the sweep and a confirmation both touch the order's updated_ms and the step's)."""
    rows = (
        await s.execute(
            select(
                ConversionOrder.id,
                ConversionOrder.state,
                ConversionOrder.updated_ms,
                func.max(ConversionStep.updated_ms),
                func.count(ConversionEvent.id.distinct()),
            )
            .join(ConversionTarget, ConversionTarget.order_id == ConversionOrder.id)
            .join(ConversionStep, ConversionStep.target_id == ConversionTarget.id)
            .outerjoin(ConversionEvent, ConversionEvent.order_id == ConversionOrder.id)
            .where(
                or_(
                    ConversionOrder.state.in_(["pending_approval", "running"]),
                    ConversionOrder.updated_ms >= since,
                )
            )
            .group_by(ConversionOrder.id, ConversionOrder.state, ConversionOrder.updated_ms)
            .order_by(ConversionOrder.updated_ms.desc())
            .limit(_WATCHED)
        )
    ).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def _feed(request: Request) -> ChangeFeed:
    # One per app (like the login limiter), not a global: two apps in one process stay apart.
    feed: ChangeFeed | None = getattr(request.app.state, "change_feed", None)
    if feed is None:
        feed = ChangeFeed(request.state.db)
        request.app.state.change_feed = feed
    return feed


def _event(name: str, data: dict[str, str]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def _stream(
    feed: ChangeFeed, sessions: Sessions, areas: AreaStore, token: str, scope: Scope
) -> AsyncIterator[bytes]:
    # The browser reconnects by itself after 3 s if the stream drops.
    yield b"retry: 3000\n\n"
    last = await feed.snapshot()
    quiet = checked = time.monotonic()
    failing = False
    while True:
        await asyncio.sleep(feed.poll_s)
        now = time.monotonic()
        try:
            if now - checked >= RECHECK_S:
                checked = now
                principal = await sessions.resolve(token)
                if principal is None:
                    yield _event("signed_out", {})
                    return
                # A user moved to another area, or a new tree, applies from here on.
                scope = Scope(await areas.current(), principal.area)
            newer = await feed.snapshot()
        except (SQLAlchemyError, OSError) as exc:
            if not failing:
                log.warning("console: live updates cannot reach the database: %s", exc)
            failing = True
            continue
        failing = False
        for name, data in last.changes(newer, scope):
            yield _event(name, data)
            quiet = now
        last = newer
        if now - quiet >= KEEPALIVE_S:
            yield b": keepalive\n\n"
            quiet = now


@router.get("/events")
async def events(
    request: Request,
    _user: Annotated[Principal, Allow(Permission.SITES_READ)],
    scope: CallerScope,
    sessions: SessionsDep,
) -> StreamingResponse:
    """The event stream of every console page (see the module's docstring)."""
    # The token behind this stream: a session ended elsewhere ends the stream too.
    token = request.cookies.get(request.state.settings.cookie_name) or ""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:]
    return StreamingResponse(
        _stream(_feed(request), sessions, area_store(request), token, scope),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
